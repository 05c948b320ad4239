package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
)

// A reload held back by the deletion guard is shown on the admin page, on
// /readyz (still ready: the last good config is served) and in the metrics;
// `leanxds reload` reports it and exits 1, and `leanxds reload --confirm`
// applies it.
func TestReloadCommandConfirmsHeldReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(20, "1s"))
	ts := startTestServer(t, dir, withToken)
	served := func() int { return ts.st.View().Table("default", protocol.TypeCluster).Len() }

	writeFile(t, dir, "clusters.yaml", clusters(5, "1s"))
	code, stdout, stderr := runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, `reload held: it would delete 15 of 20 CDS in scope "default"`)
	assert.Equal(t, 20, served())

	_, page := get(t, ts.admin.URL, "/")
	assert.Contains(t, page, "RELOAD HELD at ")
	assert.Contains(t, page, `  deletes 15 of 20 CDS in scope "default"`)
	code, ready := get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `^ready: config loaded; reload held since \S+: it would delete 15 of 20 CDS in scope "default"; confirm with `+"`leanxds reload --confirm`", ready)
	assert.Equal(t, 1.0, testMetric(t, ts, "leanxds_config_reload_held"))
	assert.Equal(t, 1.0, testMetric(t, ts, `leanxds_config_reloads_total{result="held"}`))
	assert.Equal(t, 0.0, testMetric(t, ts, "leanxds_config_last_reload_successful"))

	code, stdout, stderr = runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL, "--confirm")
	assert.Equal(t, 0, code, stderr)
	assert.Regexp(t, `^applied: revision \d+, 0 resources set, 15 deleted\n$`, stdout)
	assert.Equal(t, 5, served())
	assert.Equal(t, 0.0, testMetric(t, ts, "leanxds_config_reload_held"))
	assert.Equal(t, 1.0, testMetric(t, ts, "leanxds_config_last_reload_successful"))
	_, ready = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, "ready: config loaded\n", ready)

	code, stdout, _ = runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Equal(t, "unchanged: the directory holds what the server last applied from it\n", stdout)
}

// tokenEnv hands the admin token of the test servers that take one
// (withToken) to a command, as serve's variable would.
var tokenEnv = map[string]string{"LEANXDS_ADMIN_TOKEN": testToken}

func withToken(o *serveOptions) { o.adminToken = testToken }

// POST /reload changes what is served: it answers only a caller presenting
// the admin token (from --admin-token, --admin-token-file or
// $LEANXDS_ADMIN_TOKEN); without one it is 401, with a wrong one 403.
func TestReloadNeedsTheAdminToken(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"), withToken)
	code, _, stderr := runArgs(t, nil, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "leanxds: reload: 401 Unauthorized: /reload changes what is served: it needs the admin token")
	code, _, stderr = runArgs(t, nil, "reload", "--admin", ts.admin.URL, "--admin-token", "wrong")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "403 Forbidden")

	code, stdout, stderr := runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "unchanged: the directory holds what the server last applied from it\n", stdout)

	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte(testToken+"\n"), 0o600))
	code, stdout, stderr = runArgs(t, nil, "reload", "--admin", ts.admin.URL, "--admin-token-file", file)
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "unchanged")
	code, _, stderr = runArgs(t, nil, "reload", "--admin", ts.admin.URL, "--admin-token-file", file, "--admin-token", "x")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "--admin-token and --admin-token-file are exclusive")
}

// A server configured with neither a token nor client certificates refuses
// every mutating endpoint, to local callers too, saying how to turn them on;
// its /debug/ pages answer local callers as before.
func TestReloadOffWithoutCredentials(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	code, _, stderr := runArgs(t, nil, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 1, code)
	assert.Equal(t, "leanxds: reload: 403 Forbidden: mutating admin endpoints are off: configure --admin-token-file or --admin-client-ca\n", stderr)
	code, _ = get(t, ts.admin.URL, "/debug/clients")
	assert.Equal(t, http.StatusOK, code)
}

// serve --admin-token-file: the token is the file's first line, read again
// when the file changes; a missing or empty file fails at start.
func TestServeAdminTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("first\n"), 0o600))
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) { o.adminTokenFile = file })
	code, _, stderr := runArgs(t, nil, "reload", "--admin", ts.admin.URL, "--admin-token", "first")
	assert.Equal(t, 0, code, stderr)

	require.NoError(t, os.WriteFile(file, []byte("second\n"), 0o600))
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(file, later, later))
	code, _, stderr = runArgs(t, nil, "reload", "--admin", ts.admin.URL, "--admin-token", "first")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "403 Forbidden")
	code, _, stderr = runArgs(t, map[string]string{"LEANXDS_ADMIN_TOKEN_FILE": file}, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code, stderr)

	for content, want := range map[string]string{"": "holds no token", "-": "no such file"} {
		f := filepath.Join(t.TempDir(), "token")
		if content == "" {
			require.NoError(t, os.WriteFile(f, nil, 0o600))
		}
		o := &serveOptions{configDir: t.TempDir(), scopeBy: "cluster", adminTokenFile: f}
		_, err := newServer(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
	}
}

// With --admin-tls-cert and --admin-client-ca, the admin server speaks HTTPS
// and a client certificate signed by the CA may call the mutating endpoints;
// a client without one is asked for credentials, and one presenting a
// certificate of another CA does not get through the handshake. /metrics
// answers without a certificate.
func TestReloadWithAdminClientCertificate(t *testing.T) {
	pki := newTestPKI(t)
	pki.issue(t, "server", true, "leanxds")
	pki.issue(t, "operator", false, "operator")
	other := newTestPKI(t)
	other.issue(t, "stranger", false, "stranger")
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) {
		o.adminTLSCert, o.adminTLSKey, o.adminClientCA = pki.path("server.crt"), pki.path("server.key"), pki.path("ca.crt")
	})
	ts.opts.admin = "127.0.0.1:0"
	web, err := ts.startAdmin()
	require.NoError(t, err)
	t.Cleanup(func() { shutdownHTTP(web) })
	addr := ts.adminAddr.String()

	code, stdout, stderr := runArgs(t, nil, "reload", "--admin", addr, "--tls-ca", pki.path("ca.crt"),
		"--tls-cert", pki.path("operator.crt"), "--tls-key", pki.path("operator.key"))
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "unchanged")

	code, _, stderr = runArgs(t, nil, "reload", "--admin", addr, "--tls-ca", pki.path("ca.crt"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "401 Unauthorized: /reload changes what is served: it needs a client certificate signed by --admin-client-ca")

	// The server refuses the handshake: with TLS 1.3 the client may learn it
	// as a bad certificate alert, or as a connection closed under its
	// request; either way, no HTTP answer.
	code, stdout, stderr = runArgs(t, nil, "reload", "--admin", addr, "--tls-ca", pki.path("ca.crt"),
		"--tls-cert", other.path("stranger.crt"), "--tls-key", other.path("stranger.key"))
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Regexp(t, `^leanxds: reload: Post "https://[^"]+/reload": `, stderr)

	code, _, stderr = runArgs(t, nil, "reload", "--admin", addr)
	assert.Equal(t, 1, code, "plain HTTP to an HTTPS server")
	assert.NotEmpty(t, stderr)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: web.TLSConfig.ClientCAs, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get("https://" + addr + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// A removed config directory makes the source stale: /readyz says so (and
// stays 200, the last good config being served), as do the admin page and
// leanxds_config_source_stale, until the directory is back.
func TestStaleDirectoryShown(t *testing.T) {
	dir := copyExample(t, "edge")
	ts := startTestServer(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ts.source.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	assert.Equal(t, 0.0, testMetric(t, ts, "leanxds_config_source_stale"))

	backup := t.TempDir()
	require.NoError(t, os.Rename(dir, backup+"/edge"))
	eventually(t, "stale in the metrics", func() bool { return testMetric(t, ts, "leanxds_config_source_stale") == 1 })
	code, ready := get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `^ready: config loaded; config directory stale since \S+: not watched \(the directory does not exist\)\n$`, ready)
	_, page := get(t, ts.admin.URL, "/")
	assert.Contains(t, page, "STALE since ")

	require.NoError(t, os.Rename(backup+"/edge", dir))
	eventually(t, "watched again", func() bool { return testMetric(t, ts, "leanxds_config_source_stale") == 0 })
	_, ready = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, "ready: config loaded\n", ready)
}

func testMetric(t *testing.T, ts *testServer, sample string) float64 {
	t.Helper()
	return metric(t, ts.admin.URL, sample)
}
