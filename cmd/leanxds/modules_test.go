package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What an embedder imports and the binary is built from: of go-control-plane,
// the generated protos module only (the root module, its server and caches, is
// in the module graph because grpc's go.mod requires it, and must stay out of
// the build); and no module only the benchmarks need (plotting), which live in
// bench's own module. .ci/run also checks that every go.mod is tidy.
func TestModules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	const rootCP = "github.com/envoyproxy/go-control-plane"
	benchOnly := []string{"gonum.org/", "codeberg.org/go-pdf/", "codeberg.org/go-latex/", "git.sr.ht/~sbinet/"}

	out, err := exec.Command("go", "mod", "edit", "-json", repoRoot+"/go.mod").Output()
	require.NoError(t, err)
	var mod struct {
		Require []struct{ Path string }
		Exclude []struct{ Path string }
	}
	require.NoError(t, json.Unmarshal(out, &mod))
	for _, r := range mod.Require {
		assert.NotEqual(t, rootCP, r.Path, "go.mod requires the root go-control-plane module")
		for _, b := range benchOnly {
			assert.False(t, strings.HasPrefix(r.Path, b), "go.mod requires %s, which only the benchmarks use", r.Path)
		}
	}
	assert.Empty(t, mod.Exclude, "an exclude makes go mod tidy pick another version of what it excludes")

	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}", "./...")
	cmd.Dir = repoRoot
	out, err = cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err)
	var pkgs int
	for line := range strings.Lines(string(out)) {
		pkg, module, _ := strings.Cut(strings.TrimSpace(line), " ")
		pkgs++
		assert.NotEqual(t, rootCP, module, "%s is built: a package of the root go-control-plane module", pkg)
		for _, b := range benchOnly {
			assert.False(t, strings.HasPrefix(module, b), "%s is built: a package of %s, which only the benchmarks use", pkg, module)
		}
	}
	assert.Greater(t, pkgs, 100, "go list listed the packages")
}
