package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/rollout/etcdrollout"
	"github.com/leanxds/leanxds/source"
)

// applyTarget returns the --to address of a prefix of the test's own on the
// test cluster, and a client to look at it.
func applyTarget(t *testing.T) (to string, cli *clientv3.Client, prefix string) {
	t.Helper()
	cli = etcdtest.Client(t)
	prefix = etcdtest.Prefix(t, cli)
	return "etcd://" + strings.Join(etcdtest.Endpoints(t), ",") + prefix, cli, prefix
}

// prefixRevisions returns every key under prefix with its ModRevision.
func prefixRevisions(t *testing.T, cli *clientv3.Client, prefix string) map[string]int64 {
	t.Helper()
	r, err := cli.Get(context.Background(), prefix+"/", clientv3.WithPrefix())
	require.NoError(t, err)
	out := make(map[string]int64)
	for _, kv := range r.Kvs {
		out[string(kv.Key)] = kv.ModRevision
	}
	return out
}

func TestApplyCommand(t *testing.T) {
	to, cli, prefix := applyTarget(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))

	// Flags before or after the directory.
	code, stdout, stderr := runArgs(t, nil, "apply", dir, "--to", to)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, `+ default/envoy.config.cluster.v3.Cluster/c0
+ default/envoy.config.cluster.v3.Cluster/c1
+ default/envoy.config.cluster.v3.Cluster/c2
`+prefix+`: applied: 3 added, 0 changed, 0 deleted, 0 unchanged; generation 1 replaces 0 (3 txns), current at revision `, stdout[:strings.LastIndexByte(stdout, ' ')+1])
	before := prefixRevisions(t, cli, prefix)
	assert.Len(t, before, 5, "current, applied and three resources")

	code, stdout, _ = runArgs(t, nil, "apply", "--to", to, dir)
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, ": no changes: 0 added, 0 changed, 0 deleted, 3 unchanged; generation 1")
	assert.Equal(t, before, prefixRevisions(t, cli, prefix), "nothing written")

	// --dry-run prints the difference and writes nothing.
	writeFile(t, dir, "c.yaml", clusters(2, "2s"))
	code, stdout, _ = runArgs(t, nil, "apply", dir, "--to", to, "--dry-run")
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "~ default/envoy.config.cluster.v3.Cluster/c0\n~ default/envoy.config.cluster.v3.Cluster/c1\n- default/envoy.config.cluster.v3.Cluster/c2\n")
	assert.Contains(t, stdout, "dry run: 0 added, 2 changed, 1 deleted, 0 unchanged; would write in place in generation 1")
	assert.Equal(t, before, prefixRevisions(t, cli, prefix), "nothing written")

	// --output json, for scripts.
	code, stdout, _ = runArgs(t, nil, "apply", dir, "--to", to, "--output", "json")
	require.Equal(t, 0, code)
	var res struct {
		source.ApplyResult
		Summary string `json:"summary"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	assert.Equal(t, source.ApplyInPlace, res.Mode)
	assert.Equal(t, []string{}, res.Added)
	assert.Len(t, res.Changed, 2)
	assert.Equal(t, []string{"default/envoy.config.cluster.v3.Cluster/c2"}, res.Deleted)
	assert.Positive(t, res.Revision)
	assert.Contains(t, res.Summary, "applied: 0 added, 2 changed, 1 deleted")
	assert.Equal(t, res.Revision, prefixRevisions(t, cli, prefix)[prefix+"/applied"])

	// --quiet prints the summary line alone.
	writeFile(t, dir, "c.yaml", clusters(2, "3s"))
	code, stdout, _ = runArgs(t, nil, "apply", dir, "--to", to, "--quiet")
	require.Equal(t, 0, code)
	assert.Equal(t, 1, strings.Count(stdout, "\n"), stdout)
}

func TestApplyCommandFailures(t *testing.T) {
	to, cli, prefix := applyTarget(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))

	for _, args := range [][]string{
		{"apply", dir},                           // no --to
		{"apply", "--to", to},                    // no directory
		{"apply", dir, "other", "--to", to},      // two directories
		{"apply", dir, "--to", "http://x/p"},     // not etcd://
		{"apply", dir, "--to", to, "--output=x"}, // unknown output
		{"apply", dir, "--to", to, "--max-txn-ops=0"},
		{"apply", dir, "--to", to, "--etcd-cert", "c.pem"}, // no key
	} {
		code, _, stderr := runArgs(t, nil, args...)
		assert.Equal(t, 2, code, "%q: %s", args, stderr)
	}

	// An invalid directory: validate's errors, exit 1, nothing written.
	writeFile(t, dir, "r.yaml", "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\nname: r\nvirtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {prefix: /}\n    route: {cluster: missing}\n")
	code, stdout, stderr := runArgs(t, nil, "apply", dir, "--to", to)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	_, _, verr := runArgs(t, nil, "validate", dir)
	assert.Contains(t, verr, strings.SplitN(stderr, "\n", 2)[0], "the same errors as validate")
	assert.Contains(t, stderr, dir+": invalid: nothing applied")
	assert.Empty(t, prefixRevisions(t, cli, prefix))

	// Another apply writing a generation (its staging key under a live
	// lease) wins over a change that needs a new generation: exit 3.
	require.NoError(t, os.Remove(filepath.Join(dir, "r.yaml")))
	code, _, stderr = runArgs(t, nil, "apply", dir, "--to", to)
	require.Equal(t, 0, code, stderr)
	ctx := context.Background()
	lease, err := cli.Grant(ctx, 30)
	require.NoError(t, err)
	defer cli.Revoke(ctx, lease.ID)
	_, err = cli.Put(ctx, prefix+"/staging", `{"generation":2}`, clientv3.WithLease(lease.ID))
	require.NoError(t, err)
	writeFile(t, dir, "c.yaml", clusters(20, "2s"))
	before := prefixRevisions(t, cli, prefix)
	code, _, stderr = runArgs(t, nil, "apply", dir, "--to", to, "--max-txn-ops", "8")
	assert.Equal(t, 3, code, stderr)
	assert.Contains(t, stderr, "another apply is writing a generation")
	assert.Contains(t, stderr, "apply again")
	code, stdout, _ = runArgs(t, nil, "apply", dir, "--to", to, "--max-txn-ops", "8", "--output", "json")
	assert.Equal(t, 3, code)
	assert.Contains(t, stdout, `"conflict": true`)
	assert.Equal(t, before, prefixRevisions(t, cli, prefix), "nothing written")
}

// apply --rollout stages the change: a new generation over the one served,
// the rollout's state written with it; a plain apply is then refused, and bad
// stages are a usage error.
func TestApplyCommandRollout(t *testing.T) {
	to, cli, prefix := applyTarget(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))
	code, _, stderr := runArgs(t, nil, "apply", dir, "--to", to)
	require.Equal(t, 0, code, stderr)

	for _, args := range [][]string{
		{"apply", dir, "--to", to, "--rollout", "10"},
		{"apply", dir, "--to", to, "--rollout", "0%"},
		{"apply", dir, "--to", to, "--rollout", "ids="},
		{"apply", dir, "--to", to, "--rollout", "10%", "--rollout-window", "0s"},
		{"apply", dir, "--to", to, "--rollout", "10%", "--rollout-on-timeout", "wait"},
	} {
		code, _, stderr := runArgs(t, nil, args...)
		assert.Equal(t, 2, code, "%q: %s", args, stderr)
	}

	writeFile(t, dir, "c.yaml", clusters(3, "2s"))
	code, stdout, stderr := runArgs(t, nil, "apply", dir, "--to", to, "--rollout", "ids=edge-1|edge-2,10%", "--rollout-window", "45s", "--output", "json")
	require.Equal(t, 0, code, stderr)
	var res source.ApplyResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	assert.Equal(t, source.ApplyNewGeneration, res.Mode)
	assert.Equal(t, int64(2), res.Generation)
	assert.Equal(t, int64(1), res.RolloutBase)
	st, _, err := etcdrollout.Read(context.Background(), cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, res.Rollout, st.ID)
	assert.Equal(t, rollout.Running, st.Phase)
	assert.Equal(t, 45*time.Second, st.Plan.Window)
	assert.Equal(t, 1, st.Plan.MaxNACKs)
	assert.Equal(t, rollout.Hold, st.Plan.OnTimeout)
	var names []string
	for _, s := range st.Plan.Stages {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"ids=edge-1|edge-2", "10%", "100%"}, names)
	assert.Equal(t, []string{"edge-1", "edge-2"}, st.Plan.Stages[0].Select.IDs)
	assert.Equal(t, 10.0, st.Plan.Stages[1].Select.Percent)

	writeFile(t, dir, "c.yaml", clusters(3, "3s"))
	code, _, stderr = runArgs(t, nil, "apply", dir, "--to", to)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "rollout "+st.ID+" is running (generation 1 to 2)")
}
