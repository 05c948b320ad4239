package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	code, _, stderr := runArgs(t, nil, "serve", "--help")
	assert.Equal(t, 0, code)
	for _, f := range []string{"config", "listen", "admin", "scope-by", "no-default-scope", "tls-cert", "tls-key",
		"client-ca", "node-identity", "log-level", "log-format", "debounce", "drain-timeout"} {
		assert.Regexp(t, `(?m)^  --`+f+`( \w+)?$`, stderr)
		assert.Contains(t, stderr, "$"+envName(f), f)
	}
	assert.Contains(t, stderr, `(default "127.0.0.1:18000")`)

	code, stdout, _ := runArgs(t, nil, "help", "dump")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "--node id")
}

// A flag may come from its LEANXDS_* variable; the command line wins.
func TestFlagsFromEnv(t *testing.T) {
	c, o := serveCommand(&bytes.Buffer{})
	env := map[string]string{"LEANXDS_CONFIG": "/from/env", "LEANXDS_SCOPE_BY": "id", "LEANXDS_NO_DEFAULT_SCOPE": "true", "LEANXDS_DEBOUNCE": "1s"}
	err := c.parse([]string{"--scope-by", "metadata:tenant"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	assert.Equal(t, "/from/env", o.configDir)
	assert.Equal(t, "metadata:tenant", o.scopeBy)
	assert.True(t, o.noDefaultScope)
	assert.Equal(t, "1s", o.debounce.String())
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
