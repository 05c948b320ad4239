package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/source"
)

// runArgs runs the command line in process with the given environment.
func runArgs(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = run(context.Background(), args, lookup, &out, &errb)
	return code, out.String(), errb.String()
}

// --help explains every flag, with the two dashes and its environment variable.
func TestServeHelp(t *testing.T) {
	code, stdout, stderr := runArgs(t, nil, "serve", "--help")
	assert.Equal(t, 0, code)
	assert.Empty(t, stderr)
	for _, f := range []string{"config", "listen", "admin", "scope-by", "no-default-scope", "tls-cert", "tls-key",
		"client-ca", "node-identity", "scope-map", "log-level", "log-format", "debounce", "drain-timeout", "snapshot", "snapshot-interval", "restore-timeout", "allow-dangling",
		"csds-max-bytes", "admin-token", "admin-max-bytes", "admin-max-page", "pprof",
		"max-file-bytes", "max-dir-bytes", "max-delete-fraction", "delete-guard-min",
		"admin-token-file", "admin-tls-cert", "admin-tls-key", "admin-client-ca",
		"history", "rollout", "rollout-window", "rollout-max-nacks", "rollout-on-timeout"} {
		assert.Regexp(t, `(?m)^  --`+f+`( \w+)?$`, stdout)
		assert.Contains(t, stdout, "$"+envName(f), f)
	}
	assert.Contains(t, stdout, `(default "127.0.0.1:18000")`)
	assert.Contains(t, stdout, `--snapshot-interval duration
        how often the served config is written to --snapshot if it changed (and once more at shutdown) (default "1m0s")`)
	assert.Contains(t, stdout, "s3://bucket/key?region=")

	code, stdout, _ = runArgs(t, nil, "help", "dump")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "--node id")
	code, stdout, _ = runArgs(t, nil, "help", "reload")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "--confirm\n")
}

// Every command's -h and --help print the usage to stdout and exit 0; help
// for an unknown command and a bad flag fail with exit 2 on stderr.
func TestHelpOnStdout(t *testing.T) {
	for name := range commands {
		for _, h := range []string{"-h", "--help"} {
			code, stdout, stderr := runArgs(t, nil, name, h)
			assert.Equal(t, 0, code, name+" "+h)
			assert.Contains(t, stdout, "Usage: leanxds "+name, name+" "+h)
			assert.Empty(t, stderr, name+" "+h)
		}
		code, stdout, stderr := runArgs(t, nil, "help", name)
		assert.Equal(t, 0, code, "help "+name)
		assert.Contains(t, stdout, "Usage: leanxds "+name)
		assert.Empty(t, stderr, "help "+name)
	}

	code, stdout, stderr := runArgs(t, nil, "help", "nosuch")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, `unknown command "nosuch"`)

	code, stdout, stderr = runArgs(t, nil, "dump", "--no-such-flag")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "flag provided but not defined: -no-such-flag")
	assert.Contains(t, stderr, "Usage: leanxds dump")
}

// A flag may come from its LEANXDS_* variable; the command line wins.
func TestFlagsFromEnv(t *testing.T) {
	c, o := serveCommand(&bytes.Buffer{})
	env := map[string]string{"LEANXDS_CONFIG": "/from/env", "LEANXDS_SCOPE_BY": "id", "LEANXDS_NO_DEFAULT_SCOPE": "true", "LEANXDS_DEBOUNCE": "1s",
		"LEANXDS_SNAPSHOT": "s3://bucket/leanxds/snapshot.bin?region=eu-west-1", "LEANXDS_SNAPSHOT_INTERVAL": "5m", "LEANXDS_ALLOW_DANGLING": "true"}
	err := c.parse([]string{"--scope-by", "metadata:tenant", "--snapshot-interval", "30s"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	assert.Equal(t, "/from/env", o.configDir)
	assert.Equal(t, "metadata:tenant", o.scopeBy)
	assert.True(t, o.noDefaultScope)
	assert.Equal(t, "1s", o.debounce.String())
	assert.Equal(t, "s3://bucket/leanxds/snapshot.bin?region=eu-west-1", o.snapshot)
	assert.Equal(t, 30*time.Second, o.snapshotInterval)
	assert.True(t, o.allowDangling)

	c, o = serveCommand(&bytes.Buffer{})
	require.NoError(t, c.parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	assert.Equal(t, 5*time.Minute, o.snapshotInterval)
	c, o = serveCommand(&bytes.Buffer{})
	require.NoError(t, c.parse(nil, func(string) (string, bool) { return "", false }))
	assert.Equal(t, time.Minute, o.snapshotInterval, "the default")
	assert.Empty(t, o.snapshot, "no persistence by default")
	assert.False(t, o.allowDangling, "dangling references are refused by default")
	assert.Equal(t, 10*time.Second, o.restoreTimeout, "the default")
	assert.Equal(t, source.DirOptions{MaxFileBytes: 16 << 20, MaxDirBytes: 256 << 20, MaxDeleteFraction: 0.5, DeleteGuardMin: 10}, o.dir)

	c, o = serveCommand(&bytes.Buffer{})
	limitsEnv := map[string]string{"LEANXDS_MAX_FILE_BYTES": "1048576", "LEANXDS_MAX_DIR_BYTES": "8388608",
		"LEANXDS_MAX_DELETE_FRACTION": "1", "LEANXDS_DELETE_GUARD_MIN": "50"}
	require.NoError(t, c.parse(nil, func(k string) (string, bool) { v, ok := limitsEnv[k]; return v, ok }))
	assert.Equal(t, source.DirOptions{MaxFileBytes: 1 << 20, MaxDirBytes: 8 << 20, MaxDeleteFraction: 1, DeleteGuardMin: 50}, o.dir)
}

// Bad command lines exit 2 with a message saying what is wrong.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"serve"}, "--config DIR is required"},
		{nil, []string{"serve", "--config", "x", "--scope-by", "pod"}, `--scope-by "pod"`},
		{nil, []string{"serve", "--config", "x", "--node-identity", "san-uri"}, "--node-identity needs --client-ca"},
		{nil, []string{"serve", "--config", "x", "--tls-cert", "c"}, "--tls-cert and --tls-key go together"},
		{map[string]string{"LEANXDS_DEBOUNCE": "soon"}, []string{"serve", "--config", "x"}, `LEANXDS_DEBOUNCE="soon"`},
		{nil, []string{"serve", "--config", "x", "--log-format", "xml"}, "--log-format"},
		{nil, []string{"validate"}, "name a config directory"},
		{nil, []string{"dump", "--output", "csv"}, `--output "csv"`},
		{nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{nil, []string{"serve", "--no-such-flag"}, "flag provided but not defined"},
		{nil, []string{"serve", "--config", "x", "--snapshot-interval", "0s"}, "--snapshot-interval must be positive"},
		{nil, []string{"serve", "--config", "x", "--snapshot-interval", "-1m"}, "--snapshot-interval must be positive"},
		{map[string]string{"LEANXDS_SNAPSHOT_INTERVAL": "hourly"}, []string{"serve", "--config", "x"}, `LEANXDS_SNAPSHOT_INTERVAL="hourly"`},
		{nil, []string{"serve", "--config", "x", "--restore-timeout", "0s"}, "--restore-timeout must be positive"},
		{nil, []string{"serve", "--config", "x", "--scope-map", "scopes.yaml"}, "--scope-map needs --node-identity"},
		{nil, []string{"serve", "--config", "x", "--csds-max-bytes", "0"}, "--csds-max-bytes must be positive"},
		{nil, []string{"serve", "--config", "x", "--admin-max-page", "0"}, "--admin-max-bytes and --admin-max-page must be positive"},
		{map[string]string{"LEANXDS_CSDS_MAX_BYTES": "4MiB"}, []string{"serve", "--config", "x"}, `LEANXDS_CSDS_MAX_BYTES="4MiB"`},
		{nil, []string{"serve", "--config", "x", "--max-file-bytes", "0"}, "--max-file-bytes and --max-dir-bytes must be positive"},
		{nil, []string{"serve", "--config", "x", "--max-delete-fraction", "0"}, "--max-delete-fraction must be positive"},
		{nil, []string{"serve", "--config", "x", "--delete-guard-min", "-1"}, "--delete-guard-min not negative"},
		{nil, []string{"validate", "--max-dir-bytes", "-5", "x"}, "--max-file-bytes and --max-dir-bytes must be positive"},
		{nil, []string{"reload", "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		code, _, stderr := runArgs(t, c.env, c.args...)
		assert.Equal(t, 2, code, c.args)
		assert.Contains(t, stderr, c.want, c.args)
	}
}

// validate exits 1 with one line per error, naming file, resource and field; 0
// with a summary for a valid directory.
func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	code, stdout, _ := runArgs(t, nil, "validate", dir)
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "ok: 1 resources in 1 files")

	writeFile(t, dir, "team-a/bad.yaml", cluster("api", "-1s"))
	code, _, stderr := runArgs(t, nil, "validate", dir)
	assert.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], filepath.Join(dir, "team-a", "bad.yaml")+":")
	assert.Contains(t, lines[0], `resource #1 (CDS "api"): connect_timeout:`)
	assert.Equal(t, dir+": invalid", lines[1])
}

// validate lists the client bootstraps it skips, and refuses an Envoy static
// config rather than finding nothing in it.
func TestValidateBootstraps(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "envoy.yaml", "node: {id: e}\ndynamic_resources: {ads_config: {api_type: GRPC}}\n")
	// Bootstraps alone: most likely the wrong directory, which fails.
	code, stdout, stderr := runArgs(t, nil, "validate", dir)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Equal(t, filepath.Join(dir, "envoy.yaml")+": skipped: a client's bootstrap, not resources\n"+
		dir+": invalid: no resources found, only 1 client bootstrap file(s), skipped\n", stderr)

	// Beside resources, a bootstrap is skipped and listed.
	writeFile(t, dir, "cds.yaml", cluster("web", "1s"))
	code, stdout, _ = runArgs(t, nil, "validate", dir)
	assert.Equal(t, 0, code)
	assert.Equal(t, dir+`: ok: 1 resources in 1 files, scopes ["default"]`+"\n"+
		filepath.Join(dir, "envoy.yaml")+": skipped: a client's bootstrap, not resources\n", stdout)

	writeFile(t, dir, "static.yaml", "static_resources: {listeners: [], clusters: []}\n")
	code, _, stderr = runArgs(t, nil, "validate", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, filepath.Join(dir, "static.yaml")+":1:1: an Envoy static config (top-level static_resources), not resources")
}

// validate exits 1 on a directory with a dangling reference, printing each with
// its file, scope and both resources; with --allow-dangling they are warnings
// and the exit status is 0.
func TestValidateDanglingRefs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	writeFile(t, dir, "routes.yaml", routes("main", "wbe"))
	want := filepath.Join(dir, "routes.yaml") + `: scope "default": RDS "main" refers to CDS "wbe", which no file of the scope defines`

	code, stdout, stderr := runArgs(t, nil, "validate", dir)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Equal(t, []string{want, dir + ": invalid: dangling references (--allow-dangling makes them warnings)"},
		strings.Split(strings.TrimSpace(stderr), "\n"))

	code, stdout, stderr = runArgs(t, nil, "validate", "--allow-dangling", dir)
	assert.Equal(t, 0, code)
	assert.Equal(t, "warning: "+want+"\n", stderr)
	assert.Contains(t, stdout, dir+": ok: 2 resources in 2 files")

	// validate reads no environment variable: LEANXDS_ALLOW_DANGLING is serve's.
	code, _, _ = runArgs(t, map[string]string{"LEANXDS_ALLOW_DANGLING": "true"}, "validate", dir)
	assert.Equal(t, 1, code)
}

// serve refuses to start on a directory with a dangling reference, as on an
// invalid one, naming the reference and the flag that would serve it.
func TestServeRefusesDanglingConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "routes.yaml", routes("main", "wbe"))
	code, _, stderr := runArgs(t, nil, "serve", "--config", dir, "--admin", "", "--listen", "127.0.0.1:0", "--log-level", "error")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "nothing to serve")
	assert.Contains(t, stderr, filepath.Join(dir, "routes.yaml")+`: scope "default": RDS "main" refers to CDS "wbe", which no file of the scope defines`)
	assert.Contains(t, stderr, "--allow-dangling")
}

// serve refuses to start on an invalid directory (nothing would be served), with
// the same messages as validate.
func TestServeRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.yaml", cluster("api", "-1s"))
	code, _, stderr := runArgs(t, nil, "serve", "--config", dir, "--admin", "", "--listen", "127.0.0.1:0", "--log-level", "error")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "is invalid")
	assert.Contains(t, stderr, `resource #1 (CDS "api"): connect_timeout:`)
}

// Only serve reads LEANXDS_* variables: dump must not take the server's
// certificate as its own.
func TestDumpIgnoresEnv(t *testing.T) {
	code, _, stderr := runArgs(t, map[string]string{"LEANXDS_OUTPUT": "csv"}, "dump", "--server", "127.0.0.1:1", "--timeout", "1ms")
	assert.Equal(t, 1, code, "the env var is ignored, and the dial fails")
	assert.NotContains(t, stderr, "csv")
}

// A --snapshot that cannot be used stops serve at start (exit 1), before it
// listens, with a message that names the URL and says what is wrong.
func TestServeRefusesBadSnapshotURL(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	missing := filepath.Join(t.TempDir(), "no-such-dir", "snapshot.bin")
	cases := []struct{ url, want string }{
		{"ftp://example.com/snapshot.bin", `unsupported scheme "ftp"`},
		{"file://" + missing, "does not exist"},
		{missing, "does not exist"},
		{"file://host/snapshot.bin", "three slashes"},
		{"s3://bucket-without-key", "s3://bucket/key"},
		{"s3://bucket/key?regoin=eu-west-1", "unknown parameter regoin"},
	}
	for _, c := range cases {
		code, _, stderr := runArgs(t, nil, "serve", "--config", dir, "--snapshot", c.url,
			"--admin", "", "--listen", "127.0.0.1:0", "--log-level", "error")
		assert.Equal(t, 1, code, c.url)
		assert.Contains(t, stderr, c.url, "the message names the URL")
		assert.Contains(t, stderr, c.want, c.url)
	}
}

// version and --version print the build's version, commit and Go version, as
// leanxds_build_info labels them.
func TestVersion(t *testing.T) {
	info := admin.ReadBuildInfo()
	want := fmt.Sprintf("leanxds %s\ncommit: %s\ngo: %s %s/%s\n", info.Version, info.Commit, info.GoVersion, runtime.GOOS, runtime.GOARCH)
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, stdout, stderr := runArgs(t, nil, args...)
		assert.Equal(t, 0, code, args)
		assert.Equal(t, want, stdout, args)
		assert.Empty(t, stderr, args)
	}
	code, _, stderr := runArgs(t, nil, "version", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `unexpected argument "extra"`)

	var b bytes.Buffer
	printVersion(&b, admin.BuildInfo{Version: "v0.3.0", Commit: "0123abc+dirty", GoVersion: "go1.26.1"})
	assert.Equal(t, fmt.Sprintf("leanxds v0.3.0\ncommit: 0123abc+dirty\ngo: go1.26.1 %s/%s\n", runtime.GOOS, runtime.GOARCH), b.String())
}

// Durations are logged as "10s" in both formats, also inside a group, not as
// nanoseconds.
func TestLoggerDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, "info", format)
		require.NoError(t, err)
		log.Info("x", "debounce", 10*time.Second, slog.Group("g", "wait", 250*time.Millisecond))
		switch format {
		case "json":
			var rec map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), buf.String())
			assert.Equal(t, "10s", rec["debounce"])
			assert.Equal(t, map[string]any{"wait": "250ms"}, rec["g"])
		case "text":
			assert.Contains(t, buf.String(), "debounce=10s g.wait=250ms")
		}
	}
}

// serve --pprof mounts the profiles on the admin server; without it,
// /debug/pprof/ is not found.
func TestServePprofFlag(t *testing.T) {
	c, o := serveCommand(&bytes.Buffer{})
	require.NoError(t, c.parse([]string{"--pprof"}, func(string) (string, bool) { return "", false }))
	assert.True(t, o.pprof)

	for _, on := range []bool{false, true} {
		ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) { o.pprof = on })
		resp, err := http.Get(ts.admin.URL + "/debug/pprof/heap")
		require.NoError(t, err)
		resp.Body.Close()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		assert.Equal(t, want, resp.StatusCode, "--pprof=%v", on)
	}
}
