package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCIScriptsSourcedKeepShellOptions sources the CI helper scripts in a
// bash whose options are the defaults and checks that the options are the
// same afterwards, on the path where a step fails (a go that fails), so no
// versitygw is needed.
func TestCIScriptsSourcedKeepShellOptions(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	fakeBin := t.TempDir()
	if err := os.WriteFile(filepath.Join(fakeBin, "go"), []byte("#!/bin/sh\necho 'go: failing on purpose' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{".ci/s3.sh", ".ci/etcd.sh"} {
		path, err := filepath.Abs(filepath.Join(repoRoot, script))
		if err != nil {
			t.Fatal(err)
		}
		t.Run(script, func(t *testing.T) {
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c", `
before=$(set +o)
source "$1"
rc=$?
after=$(set +o)
echo "rc=$rc"
if [ "$before" = "$after" ]; then echo "options kept"; else diff <(echo "$before") <(echo "$after"); fi
`, "bash", path)
			cmd.Env = append(os.Environ(), "PATH="+fakeBin+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, _ := cmd.CombinedOutput()
			got := string(out)
			if !strings.Contains(got, "options kept") {
				t.Errorf("sourcing %s changed the shell's options:\n%s", script, got)
			}
			if !strings.Contains(got, "rc=1") {
				t.Errorf("sourcing %s with a failing go: want it to return 1 to the shell, got:\n%s", script, got)
			}
		})
	}
}
