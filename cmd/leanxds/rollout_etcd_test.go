package main

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/rollout/etcdrollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Two leanxds binaries serving one etcd prefix, a change staged by leanxds
// apply --rollout: only the canary, on one replica, is sent it; its NACK rolls
// the change back (P/current is the base again), the canary is sent the base's
// version again, and the other node, on the other replica, is sent nothing
// until the next change.
func TestBinaryEtcdRolloutRollsBack(t *testing.T) {
	if _, err := stream.New(store.New(), stream.Options{}).WaitFor(context.Background(), 1, stream.Selector{}, func(*stream.Applied) bool { return true }); err != nil {
		t.Skipf("stream.Server.WaitFor: %v", err)
	}
	to, cli, prefix := applyTarget(t)
	dir := t.TempDir()
	writeFile(t, dir, "edge/c.yaml", clusters(2, "1s"))
	code, _, stderr := runArgs(t, nil, "apply", dir, "--to", to)
	require.Equal(t, 0, code, stderr)
	a := startServe(t, t.TempDir(), nil, "--source", to, "--replica-id", "a", "--fleet-interval", "100ms", "--drain-timeout", "1s")
	b := startServe(t, t.TempDir(), nil, "--source", to, "--replica-id", "b", "--fleet-interval", "100ms", "--drain-timeout", "1s")

	connect := func(addr, id string) (*conv.SotW, string) {
		c := conv.ADS(t, dialInsecure(t, addr), node(id, "edge"), conv.WithTimeout(20*time.Second))
		v := c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("c0", "c1")).Version()
		c.ACK()
		return c, v
	}
	canary, base := connect(a.xds, "canary-1")
	other, _ := connect(b.xds, "other-1")

	writeFile(t, dir, "edge/c.yaml", clusters(2, "2s"))
	code, stdout, stderr := runArgs(t, nil, "apply", dir, "--to", to, "--rollout", "ids=canary-1,100%", "--rollout-window", "1m")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "generation 2 staged over generation 1 by rollout ")
	canary.ExpectResponse(conv.VersionNot(base))

	// leanxds fleet, through either replica, shows the canary's standing as
	// replica a published it, and the other node, outside the stage, current
	// on the base the rollout serves it.
	for _, p := range []*proc{a, b} {
		var table string
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, stdout, _ := runArgs(t, nil, "fleet", "--admin", p.admin)
			table = stdout
			if code == 0 && regexp.MustCompile(`(?m)^a\s+canary-1\s+edge\s+no\s+CDS\s+gen2-\S+ stage 1 pending`).MatchString(table) &&
				regexp.MustCompile(`(?m)^b\s+other-1\s+edge\s+yes\s+-\s+-$`).MatchString(table) {
				break
			}
			require.True(t, time.Now().Before(deadline), "leanxds fleet --admin %s:\n%s", p.admin, table)
			time.Sleep(100 * time.Millisecond)
		}
	}
	canary.NACK("connect_timeout 2s is not allowed here")

	var st etcdrollout.State
	deadline := time.Now().Add(30 * time.Second)
	for st.Phase != rollout.RolledBack {
		require.True(t, time.Now().Before(deadline), "not rolled back within 30s: %+v", st)
		time.Sleep(50 * time.Millisecond)
		var err error
		st, _, err = etcdrollout.Read(context.Background(), cli, prefix)
		require.NoError(t, err)
	}
	assert.Contains(t, st.Events[len(st.Events)-1].Message, "NACK from node canary-1 (replica a)")
	assert.Contains(t, st.Events[len(st.Events)-1].Message, "connect_timeout 2s is not allowed here")
	r, err := cli.Get(context.Background(), source.EtcdCurrentKey(prefix))
	require.NoError(t, err)
	assert.Equal(t, "1", string(r.Kvs[0].Value))
	canary.ExpectResponse(conv.Version(base))

	// The next change reaches the other node as its first response since
	// the base: it was never sent the canary's.
	writeFile(t, dir, "edge/c.yaml", clusters(2, "3s"))
	code, _, stderr = runArgs(t, nil, "apply", dir, "--to", to)
	require.Equal(t, 0, code, stderr)
	resp := other.ExpectResponse(conv.VersionNot(base))
	assert.Equal(t, 3*time.Second, resp.Resource("c0").(*clusterv3.Cluster).GetConnectTimeout().AsDuration())
}

// Promote and abort from any replica's admin server (leanxds rollout) write
// the state in etcd, and every replica's /debug/rollouts shows it.
func TestBinaryEtcdRolloutAdmin(t *testing.T) {
	to, cli, prefix := applyTarget(t)
	dir := t.TempDir()
	writeFile(t, dir, "edge/c.yaml", clusters(2, "1s"))
	code, _, stderr := runArgs(t, nil, "apply", dir, "--to", to)
	require.Equal(t, 0, code, stderr)
	const token = "etcd-rollout-token"
	env := []string{"LEANXDS_ADMIN_TOKEN=" + token}
	a := startServe(t, t.TempDir(), env, "--source", to, "--replica-id", "a", "--fleet-interval", "100ms", "--drain-timeout", "1s")
	b := startServe(t, t.TempDir(), env, "--source", to, "--replica-id", "b", "--fleet-interval", "100ms", "--drain-timeout", "1s")

	writeFile(t, dir, "edge/c.yaml", clusters(2, "2s"))
	code, _, stderr = runArgs(t, nil, "apply", dir, "--to", to, "--rollout", "ids=canary-1,50%,100%", "--rollout-window", "1h")
	require.Equal(t, 0, code, stderr)
	st, _, err := etcdrollout.Read(context.Background(), cli, prefix)
	require.NoError(t, err)

	// Every replica shows it, once its source has committed the target.
	for _, p := range []*proc{a, b} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, stdout, stderr := runArgs(t, nil, "rollout", "status", "--admin", p.admin, "--admin-token", token, "--output", "json")
			var page struct{ Rollout *rollout.Status }
			if code == 0 && json.Unmarshal([]byte(stdout), &page) == nil && page.Rollout != nil &&
				page.Rollout.ID == st.ID && page.Rollout.Phase == rollout.Running && page.Rollout.Target != 0 {
				assert.Equal(t, []string{"edge"}, page.Rollout.Scopes)
				break
			}
			require.True(t, time.Now().Before(deadline), "replica %s does not show rollout %s: %d %q %s", p.admin, st.ID, code, stdout, stderr)
			time.Sleep(100 * time.Millisecond)
		}
	}

	code, _, stderr = runArgs(t, nil, "rollout", "promote", "--admin", a.admin, "--admin-token", token, "--reason", "canary looks fine")
	require.Equal(t, 0, code, stderr)
	got, _, err := etcdrollout.Read(context.Background(), cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, 1, got.Stage)
	assert.Contains(t, got.Events[len(got.Events)-1].Message, "promoted by hand: canary looks fine")

	code, _, stderr = runArgs(t, nil, "rollout", "abort", "--admin", b.admin, "--admin-token", token)
	require.Equal(t, 0, code, stderr)
	got, _, err = etcdrollout.Read(context.Background(), cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, rollout.RolledBack, got.Phase)
	r, err := cli.Get(context.Background(), source.EtcdCurrentKey(prefix))
	require.NoError(t, err)
	assert.Equal(t, "1", string(r.Kvs[0].Value))

	code, _, _ = runArgs(t, nil, "rollout", "abort", "--admin", a.admin, "--admin-token", token)
	assert.Equal(t, 1, code, "no rollout in progress")
}
