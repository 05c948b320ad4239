package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
)

// startRollouts runs the server's rollout Manager for the test, as serve's
// run does.
func startRollouts(t *testing.T, ts *testServer) {
	t.Helper()
	stop := ts.startRollouts(context.Background())
	t.Cleanup(stop)
}

// ackedClusters opens a SotW stream of node id (scope "default"), takes its
// clusters and ACKs them; it returns the stream and the version held.
func ackedClusters(t *testing.T, ts *testServer, id string) (*conv.SotW, string) {
	t.Helper()
	c := conv.ADS(t, ts.cc, node(id, "default"))
	v := c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("c0", "c1", "c2")).Version()
	c.ACK()
	return c, v
}

// versionSent returns the CDS version last sent to node id's stream.
func versionSent(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	for _, s := range ts.xds.Streams() {
		if s.Node.GetId() == id {
			for _, ty := range s.Types {
				if ty.TypeURL == protocol.TypeCluster {
					return ty.VersionSent
				}
			}
		}
	}
	t.Fatalf("no stream of node %s", id)
	return ""
}

// serve --rollout stages a reload of the directory: the first stage's node
// is served the change while the other keeps the content before it; once it
// ACKs, the next stage serves every node, and once all ACKed the rollout is
// promoted. leanxds rollout status shows it; the load at start was not
// staged.
func TestStagedReloadReachesEveryNode(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(3, "1s"))
	ts := startTestServer(t, dir, withToken, func(o *serveOptions) {
		o.rollout, o.rolloutWindow, o.rolloutMaxNACKs, o.rolloutOnTimeout = "ids=canary,100%", time.Minute, 1, "hold"
	})
	startRollouts(t, ts)
	canary, before := ackedClusters(t, ts, "canary")
	other, otherBefore := ackedClusters(t, ts, "other")
	require.Equal(t, before, otherBefore)
	code, stdout, _ := runArgs(t, tokenEnv, "rollout", "status", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Equal(t, "no rollout since the server started\n", stdout, "the load at start is not staged")

	writeFile(t, dir, "clusters.yaml", clusters(3, "2s"))
	code, stdout, stderr := runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `^applied: revision \d+, 3 resources set, 0 deleted\nstaged: rollout \S+ serves it to stage 1 \(ids=canary\) first; see leanxds rollout status\n$`, stdout)

	after := canary.ExpectResponse(conv.VersionNot(before)).Version()
	assert.Equal(t, before, versionSent(t, ts, "other"), "the node outside the first stage keeps the content before the change")
	code, stdout, _ = runArgs(t, tokenEnv, "rollout", "status", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "stage 1 (ids=canary) of 2: ids=canary → 100%")

	canary.ACK()
	other.ExpectResponse(conv.Version(after))
	other.ACK()
	eventually(t, "the rollout promoted", func() bool { return phaseOf(t, ts) == "promoted" })
	code, stdout, _ = runArgs(t, tokenEnv, "rollout", "status", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, ": promoted, stage 2 (100%) of 2")

	code, _, stderr = runArgs(t, tokenEnv, "rollout", "promote", "--admin", ts.admin.URL)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no rollout in progress")
}

// phaseOf reads the rollout's phase.
func phaseOf(t *testing.T, ts *testServer) string {
	t.Helper()
	st, ok := ts.rollouts.Status()
	if !ok {
		return ""
	}
	return string(st.Phase)
}

// A NACK from the first stage's node rolls the staged reload back: every node
// is served the content before it, with the version strings they held, and
// the NACK's message is on the rollout's events. The directory, unchanged
// since, is not applied again by leanxds reload.
func TestStagedReloadRolledBackOnNACK(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(3, "1s"))
	ts := startTestServer(t, dir, withToken, func(o *serveOptions) {
		o.rollout, o.rolloutWindow, o.rolloutMaxNACKs, o.rolloutOnTimeout = "ids=canary,100%", time.Minute, 1, "hold"
	})
	startRollouts(t, ts)
	canary, before := ackedClusters(t, ts, "canary")
	ackedClusters(t, ts, "other")
	c0 := c0Version(ts)

	writeFile(t, dir, "clusters.yaml", clusters(3, "2s"))
	code, _, stderr := runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	require.Equal(t, 0, code, stderr)
	canary.ExpectResponse(conv.VersionNot(before))
	canary.NACK("unsupported lb_policy")
	canary.ExpectResponse(conv.Version(before))
	eventually(t, "the rollout rolled back", func() bool { return phaseOf(t, ts) == "rolled_back" })
	code, stdout, _ := runArgs(t, tokenEnv, "rollout", "status", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "rolled_back")
	assert.Contains(t, stdout, "unsupported lb_policy")
	assert.Equal(t, before, versionSent(t, ts, "other"))

	code, stdout, stderr = runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "unchanged: the directory holds what the server last applied from it\n", stdout)
	assert.Equal(t, c0, c0Version(ts), "the content before the change stands")
}

// c0Version is the version of cluster c0 in the store.
func c0Version(ts *testServer) string {
	return ts.st.View().Table("default", protocol.TypeCluster).Get("c0").Version
}

// leanxds history lists the revisions; leanxds rollback without --yes shows
// what it would do and changes nothing (exit 3); with --yes it puts the
// earlier content back, and every node is sent the very version it held
// then. The rollback stands over a reload of the unchanged directory, and a
// change of the files is applied again.
func TestHistoryAndRollback(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(3, "1s"))
	ts := startTestServer(t, dir, withToken)
	c, v1 := ackedClusters(t, ts, "envoy-1")
	rev1, c0v1 := ts.st.View().Revision(), c0Version(ts)
	delta := conv.DeltaADS(t, ts.cc, node("envoy-2", "default"))
	r := delta.Subscribe(protocol.TypeCluster, "*").ExpectResponse(conv.Updated("c0", "c1", "c2"))
	delta.ACK()
	held := map[string]string{}
	for _, n := range []string{"c0", "c1", "c2"} {
		held[n] = r.VersionOf(n)
	}

	writeFile(t, dir, "clusters.yaml", clusters(3, "2s"))
	code, _, stderr := runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	require.Equal(t, 0, code, stderr)
	v2 := c.ExpectResponse(conv.VersionNot(v1)).Version()
	c.ACK()
	delta.ExpectResponse(conv.Updated("c0", "c1", "c2"))
	delta.ACK()
	rev2 := ts.st.View().Revision()

	code, stdout, stderr := runArgs(t, tokenEnv, "history", "--admin", ts.admin.URL)
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, fmt.Sprintf(`(?m)^REVISION +TIME +SCOPE +SOURCE +RESOURCES +CHANGES\n%d\* +\S+ +default +dir %s +3 +\+0 ~3 -0: ~CDS/c0 ~CDS/c1 ~CDS/c2\n%d +\S+ +default +dir %s +3 +\+3 ~0 -0`,
		rev2, dir, rev1, dir), stdout)
	code, stdout, _ = runArgs(t, tokenEnv, "history", "--admin", ts.admin.URL, "--output", "json")
	assert.Equal(t, 0, code)
	var page admin.HistoryPage
	require.NoError(t, json.Unmarshal([]byte(stdout), &page))
	assert.Equal(t, rev2, page.Revision)
	require.Len(t, page.Revisions, 2)

	code, stdout, stderr = runArgs(t, tokenEnv, "rollback", "--admin", ts.admin.URL)
	assert.Equal(t, 3, code)
	assert.Contains(t, stdout, fmt.Sprintf("rollback to revision %d (the one before the newest, %d):", rev2-1, rev2))
	assert.Contains(t, stdout, fmt.Sprintf(`scope "default": revision %d (3 resources) back to revision %d of `, rev2, rev1))
	assert.Contains(t, stderr, "nothing done: run again with --yes")
	assert.Equal(t, rev2, ts.st.View().Revision())

	code, stdout, stderr = runArgs(t, tokenEnv, "rollback", "--admin", ts.admin.URL, "--to", fmt.Sprint(rev1), "--yes")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, fmt.Sprintf("rolled back to revision %d: revision %d, 3 resources set, 0 deleted\n", rev1, rev2+1), stdout)
	c.ExpectResponse(conv.Version(v1))
	c.ACK()
	// The delta client is sent each resource at the very version it held.
	r = delta.ExpectResponse(conv.Updated("c0", "c1", "c2"))
	delta.ACK()
	for n, v := range held {
		assert.Equal(t, v, r.VersionOf(n), n)
	}

	code, stdout, _ = runArgs(t, tokenEnv, "history", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Regexp(t, fmt.Sprintf(`(?m)^%d\* +\S+ +default +rollback to %d \(admin\) `, rev2+1, rev1), stdout)

	code, stdout, _ = runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "unchanged")
	assert.Equal(t, c0v1, c0Version(ts), "the rollback stands")

	writeFile(t, dir, "clusters.yaml", clusters(3, "3s"))
	code, _, stderr = runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	require.Equal(t, 0, code, stderr)
	v3 := c.ExpectResponse(conv.VersionNot(v1)).Version()
	assert.NotEqual(t, v2, v3)

	code, _, stderr = runArgs(t, tokenEnv, "rollback", "--admin", ts.admin.URL, "--to", "999", "--yes")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "422")
	code, _, stderr = runArgs(t, nil, "rollback", "--admin", ts.admin.URL, "--yes")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "401 Unauthorized")
}

// serve's rollout and history flags are checked at start.
func TestServeRolloutFlags(t *testing.T) {
	dir := copyExample(t, "edge")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rollout", "5"}, `--rollout "5"`},
		{[]string{"--rollout", "1%", "--rollout-window", "0s"}, "--rollout-window must be positive"},
		{[]string{"--rollout-max-nacks", "0"}, "--rollout-max-nacks must be at least 1"},
		{[]string{"--rollout-on-timeout", "wait"}, `--rollout-on-timeout "wait": want hold or rollback`},
		{[]string{"--history", "0"}, "--history must be at least 1"},
		{[]string{"--admin-token", "a", "--admin-token-file", "f"}, "--admin-token and --admin-token-file are exclusive"},
		{[]string{"--admin-client-ca", "ca.crt"}, "--admin-client-ca needs --admin-tls-cert"},
		{[]string{"--admin-tls-cert", "a.crt"}, "--admin-tls-cert and --admin-tls-key go together"},
	} {
		code, _, stderr := runArgs(t, nil, append([]string{"serve", "--config", dir, "--listen", "127.0.0.1:0", "--admin", ""}, tc.args...)...)
		assert.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		assert.Contains(t, stderr, tc.want, tc.args)
	}
	code, _, stderr := runArgs(t, nil, "serve", "--source", "etcd://127.0.0.1:1/x", "--rollout", "1%")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "--rollout stages the reloads of a config directory")
}

// A rollout in progress survives a restart of serve with --snapshot: the
// restarted process serves the same stage (the canary the change, the other
// node the content before it) before it serves anyone, and the rollout goes
// on from the nodes' ACKs to every node.
func TestRolloutSurvivesRestart(t *testing.T) {
	leanxdsBinary(t)
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(3, "1s"))
	snapshot := filepath.Join(t.TempDir(), "snapshot.bin")
	env := []string{"LEANXDS_ADMIN_TOKEN=" + testToken}
	args := []string{"--config", dir, "--snapshot", snapshot, "--snapshot-interval", "1h", "--debounce", "50ms",
		"--rollout", "ids=canary,100%", "--rollout-window", "1m"}
	a := startServe(t, t.TempDir(), env, args...)
	ccA := dialInsecure(t, a.xds)
	canary := conv.ADS(t, ccA, node("canary", "default"), conv.WithTimeout(10*time.Second))
	before := canary.Request(protocol.TypeCluster).ExpectResponse(conv.Names("c0", "c1", "c2")).Version()
	canary.ACK()

	writeFile(t, dir, "clusters.yaml", clusters(3, "2s"))
	target := canary.ExpectResponse(conv.VersionNot(before)).Version()
	var id string
	eventually(t, "the rollout at its first stage", func() bool {
		_, out, _ := runArgs(t, tokenEnv, "rollout", "status", "--admin", a.admin, "--output", "json")
		p, err := decodeRollout([]byte(out))
		if err != nil || p.Rollout == nil {
			return false
		}
		id = p.Rollout.ID
		return p.Rollout.Phase == "running" && p.Rollout.Stage == 0
	}, a.logText)
	a.stop(t)

	b := startServe(t, t.TempDir(), env, args...)
	require.NotNil(t, b.logLine("rollout restored from the snapshot"), b.logText())
	assert.Less(t, b.logIndex("rollout restored from the snapshot"), b.logIndex("xDS listening"))
	code, stdout, stderr := runArgs(t, tokenEnv, "rollout", "status", "--admin", b.admin)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "rollout "+id+": running, stage 1 (ids=canary) of 2")

	ccB := dialInsecure(t, b.xds)
	other := conv.ADS(t, ccB, node("other", "default"), conv.WithTimeout(10*time.Second))
	other.Request(protocol.TypeCluster).ExpectResponse(conv.Version(before))
	other.ACK()
	canaryB := conv.ADS(t, ccB, node("canary", "default"), conv.WithTimeout(10*time.Second))
	canaryB.Request(protocol.TypeCluster).ExpectResponse(conv.Version(target))
	canaryB.ACK()
	other.ExpectResponse(conv.Version(target))
	other.ACK()
	eventually(t, "the restored rollout promoted", func() bool {
		_, out, _ := runArgs(t, tokenEnv, "rollout", "status", "--admin", b.admin)
		return strings.Contains(out, ": promoted,")
	}, b.logText)
}

// A stage whose window ends before its nodes ACKed holds the rollout
// (--rollout-on-timeout hold) until leanxds rollout promote serves the next
// stage; leanxds rollout abort rolls a rollout back, every node being served
// the content before it again. The Manager's metrics are served.
func TestRolloutPromoteAndAbortByHand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(3, "1s"))
	ts := startTestServer(t, dir, withToken, func(o *serveOptions) {
		o.rollout, o.rolloutWindow, o.rolloutMaxNACKs, o.rolloutOnTimeout = "ids=canary,100%", 200*time.Millisecond, 1, "hold"
	})
	startRollouts(t, ts)
	canary, before := ackedClusters(t, ts, "canary")
	other, _ := ackedClusters(t, ts, "other")

	writeFile(t, dir, "clusters.yaml", clusters(3, "2s"))
	code, _, stderr := runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	require.Equal(t, 0, code, stderr)
	target := canary.ExpectResponse(conv.VersionNot(before)).Version()
	// The canary does not answer: the window ends.
	eventually(t, "the rollout held", func() bool { return phaseOf(t, ts) == "held" })
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, `leanxds_rollout_phase{phase="held"}`))
	assert.Equal(t, before, versionSent(t, ts, "other"))

	code, stdout, stderr := runArgs(t, tokenEnv, "rollout", "promote", "--admin", ts.admin.URL, "--reason", "checked by hand")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "stage 2 (100%) of 2")
	other.ExpectResponse(conv.Version(target))
	other.ACK()
	canary.ACK()
	eventually(t, "the rollout promoted", func() bool { return phaseOf(t, ts) == "promoted" })
	_, stdout, _ = runArgs(t, tokenEnv, "rollout", "status", "--admin", ts.admin.URL)
	assert.Contains(t, stdout, "checked by hand")

	writeFile(t, dir, "clusters.yaml", clusters(3, "3s"))
	code, _, stderr = runArgs(t, tokenEnv, "reload", "--admin", ts.admin.URL)
	require.Equal(t, 0, code, stderr)
	canary.ExpectResponse(conv.VersionNot(target))
	code, stdout, stderr = runArgs(t, tokenEnv, "rollout", "abort", "--admin", ts.admin.URL, "--reason", "latency up")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, ": rolled_back,")
	canary.ExpectResponse(conv.Version(target))
	assert.Equal(t, target, versionSent(t, ts, "other"))
	assert.GreaterOrEqual(t, metric(t, ts.admin.URL, "leanxds_rollback_total"), 1.0)
}

// A rollback stands across a restart with --snapshot: the restarted serve
// does not apply the directory again while its files are as they were, and
// applies them once they change.
func TestRollbackStandsAcrossRestart(t *testing.T) {
	leanxdsBinary(t)
	dir := t.TempDir()
	writeFile(t, dir, "clusters.yaml", clusters(3, "1s"))
	snapshot := filepath.Join(t.TempDir(), "snapshot.bin")
	env := []string{"LEANXDS_ADMIN_TOKEN=" + testToken}
	args := []string{"--config", dir, "--snapshot", snapshot, "--snapshot-interval", "1h", "--debounce", "50ms"}
	a := startServe(t, t.TempDir(), env, args...)
	c := conv.ADS(t, dialInsecure(t, a.xds), node("envoy-1", "default"), conv.WithTimeout(10*time.Second))
	v1 := c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("c0", "c1", "c2")).Version()
	c.ACK()
	writeFile(t, dir, "clusters.yaml", clusters(3, "2s"))
	c.ExpectResponse(conv.VersionNot(v1))
	c.ACK()
	code, _, stderr := runArgs(t, tokenEnv, "rollback", "--admin", a.admin, "--yes")
	require.Equal(t, 0, code, stderr)
	c.ExpectResponse(conv.Version(v1))
	c.ACK()
	a.stop(t)

	b := startServe(t, t.TempDir(), env, args...)
	again := conv.ADS(t, dialInsecure(t, b.xds), node("envoy-1", "default"), conv.WithTimeout(10*time.Second))
	again.Request(protocol.TypeCluster).ExpectResponse(conv.Version(v1))
	again.ACK()
	code, stdout, _ := runArgs(t, tokenEnv, "reload", "--admin", b.admin)
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "unchanged")

	writeFile(t, dir, "clusters.yaml", clusters(3, "3s"))
	again.ExpectResponse(conv.VersionNot(v1))
}
