package main

import (
	"context"
	"net/http"
	"os"
	"testing"

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
	ts := startTestServer(t, dir)
	served := func() int { return ts.st.View().Table("default", protocol.TypeCluster).Len() }

	writeFile(t, dir, "clusters.yaml", clusters(5, "1s"))
	code, stdout, stderr := runArgs(t, nil, "reload", "--admin", ts.admin.URL)
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

	code, stdout, stderr = runArgs(t, nil, "reload", "--admin", ts.admin.URL, "--confirm")
	assert.Equal(t, 0, code, stderr)
	assert.Regexp(t, `^applied: revision \d+, 0 resources set, 15 deleted\n$`, stdout)
	assert.Equal(t, 5, served())
	assert.Equal(t, 0.0, testMetric(t, ts, "leanxds_config_reload_held"))
	assert.Equal(t, 1.0, testMetric(t, ts, "leanxds_config_last_reload_successful"))
	_, ready = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, "ready: config loaded\n", ready)

	code, stdout, _ = runArgs(t, nil, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Equal(t, "unchanged: the server already serves what the directory holds\n", stdout)
}

// POST /reload answers the callers the /debug/ pages answer: with
// --admin-token, only those presenting it; leanxds reload sends it from
// --admin-token or $LEANXDS_ADMIN_TOKEN.
func TestReloadNeedsTheAdminToken(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) { o.adminToken = "s3cret" })
	code, _, stderr := runArgs(t, nil, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "leanxds: reload: 401 Unauthorized: /reload needs the admin token (--admin-token)")
	code, _, stderr = runArgs(t, nil, "reload", "--admin", ts.admin.URL, "--admin-token", "wrong")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "403 Forbidden")

	code, stdout, stderr := runArgs(t, map[string]string{"LEANXDS_ADMIN_TOKEN": "s3cret"}, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "unchanged: the server already serves what the directory holds\n", stdout)
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
