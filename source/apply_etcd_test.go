package source

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// applyEtcd connects to the test etcd cluster (.ci/etcd.sh) and returns a
// client and a prefix of the test's own, or skips the test without one.
func applyEtcd(t testing.TB) (*clientv3.Client, string) {
	t.Helper()
	cli := etcdtest.Client(t)
	return cli, etcdtest.Prefix(t, cli)
}

// etcdKV is a key's value and revisions, as a test compares them.
type etcdKV struct {
	value       string
	mod, create int64
}

// etcdDump returns every key under prefix.
func etcdDump(t testing.TB, cli *clientv3.Client, prefix string) map[string]etcdKV {
	t.Helper()
	r, err := cli.Get(context.Background(), prefix+"/", clientv3.WithPrefix())
	require.NoError(t, err)
	out := make(map[string]etcdKV, len(r.Kvs))
	for _, kv := range r.Kvs {
		out[strings.TrimPrefix(string(kv.Key), prefix)] = etcdKV{string(kv.Value), kv.ModRevision, kv.CreateRevision}
	}
	return out
}

// generationKeys returns the keys of a generation in a dump, relative to it.
func generationKeys(dump map[string]etcdKV, gen int64) map[string]etcdKV {
	p := "/gen/" + strconv.FormatInt(gen, 10) + "/"
	out := make(map[string]etcdKV)
	for k, v := range dump {
		if rest, ok := strings.CutPrefix(k, p); ok {
			out[rest] = v
		}
	}
	return out
}

func apply(t testing.TB, cli *clientv3.Client, prefix, dir string, opts ApplyOptions) ApplyResult {
	t.Helper()
	res, err := ApplyEtcd(context.Background(), cli, prefix, dir, opts)
	require.NoError(t, err)
	return res
}

const applyClusterKey = "default/envoy.config.cluster.v3.Cluster/"

func TestApplyEtcdInPlaceAndNoOp(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))
	writeFile(t, dir, "edge/r.yaml", routes("main", "web"))
	writeFile(t, dir, "edge/web.yaml", cluster("web", "1s"))

	// An empty prefix: the first apply makes generation 1 and current.
	res := apply(t, cli, prefix, dir, ApplyOptions{By: "test"})
	assert.Equal(t, ApplyNewGeneration, res.Mode)
	assert.Equal(t, int64(0), res.FromGeneration)
	assert.Equal(t, int64(1), res.Generation)
	assert.Len(t, res.Added, 5)
	dump := etcdDump(t, cli, prefix)
	assert.Equal(t, "1", dump["/current"].value)
	assert.Equal(t, res.Revision, dump["/current"].mod, "Revision is the flip's")
	assert.NotContains(t, dump, "/staging", "the claim is released")
	gen1 := generationKeys(dump, 1)
	require.Len(t, gen1, 5)
	// What etcd holds is what the etcd source reads: a config file's JSON.
	for k, kv := range gen1 {
		rs, err := resources.Parse(k+".json", []byte(kv.value))
		require.NoError(t, err, k)
		assert.True(t, strings.HasSuffix(k, "/"+rs[0].Name), k)
	}
	assert.Contains(t, gen1, "edge/envoy.config.route.v3.RouteConfiguration/main")
	assert.Contains(t, dump["/applied"].value, `"generation":1`)
	assert.Contains(t, dump["/applied"].value, `"by":"test"`)

	// The same directory again writes nothing: no key of the prefix changes.
	res = apply(t, cli, prefix, dir, ApplyOptions{})
	assert.Equal(t, ApplyNone, res.Mode)
	assert.Equal(t, 5, res.Unchanged)
	assert.Zero(t, res.Revision)
	assert.Equal(t, dump, etcdDump(t, cli, prefix))
	assert.Contains(t, res.Summary(), "no changes")

	// A small change is written in place, in generation 1, in one txn: the
	// changed and added keys (and applied) at one revision, the others untouched.
	writeFile(t, dir, "c.yaml", clusters(4, "1s"))
	writeFile(t, dir, "edge/web.yaml", cluster("web", "5s"))
	res = apply(t, cli, prefix, dir, ApplyOptions{})
	assert.Equal(t, ApplyInPlace, res.Mode)
	assert.Equal(t, []string{applyClusterKey + "c3"}, res.Added)
	assert.Equal(t, []string{"edge/envoy.config.cluster.v3.Cluster/web"}, res.Changed)
	assert.Empty(t, res.Deleted)
	assert.Equal(t, 4, res.Unchanged)
	after := etcdDump(t, cli, prefix)
	assert.Equal(t, "1", after["/current"].value)
	assert.Equal(t, dump["/current"], after["/current"], "current untouched")
	for k, kv := range generationKeys(after, 1) {
		switch k {
		case applyClusterKey + "c3", "edge/envoy.config.cluster.v3.Cluster/web":
			assert.Equal(t, res.Revision, kv.mod, k)
		default:
			assert.Equal(t, gen1[k], kv, k)
		}
	}
	assert.Equal(t, res.Revision, after["/applied"].mod)
	assert.Contains(t, after["/gen/1/edge/envoy.config.cluster.v3.Cluster/web"].value, `"connect_timeout":"5s"`)
}

func TestApplyEtcdDeletes(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))
	writeFile(t, dir, "edge/web.yaml", cluster("web", "1s"))
	apply(t, cli, prefix, dir, ApplyOptions{})

	// A resource removed from a file, and a whole scope removed.
	writeFile(t, dir, "c.yaml", clusters(2, "1s"))
	require.NoError(t, os.RemoveAll(dir+"/edge"))
	before := etcdDump(t, cli, prefix)
	res := apply(t, cli, prefix, dir, ApplyOptions{})
	assert.Equal(t, ApplyInPlace, res.Mode)
	assert.Equal(t, []string{applyClusterKey + "c2", "edge/envoy.config.cluster.v3.Cluster/web"}, res.Deleted)
	assert.Empty(t, res.Added)
	assert.Empty(t, res.Changed)
	after := etcdDump(t, cli, prefix)
	assert.Equal(t, []string{applyClusterKey + "c0", applyClusterKey + "c1"}, sortedKeys(generationKeys(after, 1)))
	assert.Equal(t, before["/gen/1/"+applyClusterKey+"c0"], after["/gen/1/"+applyClusterKey+"c0"])
	assert.Contains(t, after["/applied"].value, "0 added, 0 changed, 2 deleted, 2 unchanged")
}

func TestApplyEtcdDryRunWritesNothing(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))

	// On an empty prefix, and over content it would change.
	res := apply(t, cli, prefix, dir, ApplyOptions{DryRun: true})
	assert.True(t, res.DryRun)
	assert.Equal(t, ApplyNewGeneration, res.Mode)
	assert.Len(t, res.Added, 3)
	assert.Empty(t, etcdDump(t, cli, prefix))

	apply(t, cli, prefix, dir, ApplyOptions{})
	before := etcdDump(t, cli, prefix)
	writeFile(t, dir, "c.yaml", clusters(2, "2s"))
	res = apply(t, cli, prefix, dir, ApplyOptions{DryRun: true})
	assert.Equal(t, ApplyInPlace, res.Mode)
	assert.Len(t, res.Changed, 2)
	assert.Len(t, res.Deleted, 1)
	assert.Zero(t, res.Revision)
	assert.Contains(t, res.Summary(), "dry run")
	assert.Equal(t, before, etcdDump(t, cli, prefix))
}

func TestApplyEtcdRefusesWhatValidateRefuses(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "r.yaml", routes("main", "missing")) // a dangling reference
	_, err := ApplyEtcd(context.Background(), cli, prefix, dir, ApplyOptions{})
	var ide *InvalidDirError
	require.ErrorAs(t, err, &ide)
	assert.True(t, HasDangling(err))
	_, _, verr := CheckDir(dir, DirOptions{})
	assert.Equal(t, ErrorLines(verr), ErrorLines(ide.Err), "the errors validate prints")
	assert.Empty(t, etcdDump(t, cli, prefix))

	// With AllowDangling, as validate --allow-dangling, it is applied with a warning.
	res := apply(t, cli, prefix, dir, ApplyOptions{Dir: DirOptions{AllowDangling: true}})
	assert.Len(t, res.Warnings, 1)
	assert.Len(t, res.Added, 1)
}

// TestApplyEtcdNewGenerationIsAtomic writes a change too large for one txn (a
// low MaxTxnOps): it takes several txns, yet a reader at any revision sees
// the old content whole or the new whole.
func TestApplyEtcdNewGenerationIsAtomic(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(50, "1s"))
	apply(t, cli, prefix, dir, ApplyOptions{})

	const n = 600
	for i := range 6 {
		writeFile(t, dir, fmt.Sprintf("s%d/c.yaml", i), clusters(n/6, "2s"))
	}
	res := apply(t, cli, prefix, dir, ApplyOptions{MaxTxnOps: 32})
	assert.Equal(t, ApplyNewGeneration, res.Mode)
	assert.Equal(t, int64(1), res.FromGeneration)
	assert.Equal(t, int64(2), res.Generation)
	assert.Len(t, res.Added, n)
	assert.Equal(t, 50, res.Unchanged)
	assert.Equal(t, (n+50+28)/29+3, res.Txns, "29 puts a txn, the claim, the flip, the old generation's delete")

	dump := etcdDump(t, cli, prefix)
	assert.Equal(t, "2", dump["/current"].value)
	assert.Empty(t, generationKeys(dump, 1), "the old generation is deleted")
	assert.Len(t, generationKeys(dump, 2), n+50)
	assert.NotContains(t, dump, "/staging")

	// Just before the flip, current named 1 and generation 1 was whole; at
	// the flip, generation 2 is whole.
	flip := dump["/current"].mod
	at := func(key string, rev int64, prefix bool) *clientv3.GetResponse {
		opts := []clientv3.OpOption{clientv3.WithRev(rev)}
		if prefix {
			opts = append(opts, clientv3.WithPrefix(), clientv3.WithCountOnly())
		}
		r, err := cli.Get(context.Background(), key, opts...)
		require.NoError(t, err)
		return r
	}
	assert.Equal(t, "1", string(at(prefix+"/current", flip-1, false).Kvs[0].Value))
	assert.Equal(t, int64(50), at(prefix+"/gen/1/", flip-1, true).Count)
	assert.Equal(t, int64(n+50), at(prefix+"/gen/2/", flip, true).Count)
	assert.Equal(t, int64(50), at(prefix+"/gen/1/", flip, true).Count, "deleted after the flip only")
}

// TestApplyEtcdConcurrentApplyLoses forces two applies to interleave: the
// second runs whole between the first's diff and its write. The first fails
// with ErrApplyConflict and leaves etcd as the second left it.
func TestApplyEtcdConcurrentApplyLoses(t *testing.T) {
	for _, tc := range []struct {
		name         string
		first, other int // MaxTxnOps: low forces a new generation
	}{
		{"in place vs in place", 0, 0},
		{"in place vs new generation", 0, 8},
		{"new generation vs in place", 8, 0},
		{"new generation vs new generation", 8, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, prefix := applyEtcd(t)
			base, mine, theirs := t.TempDir(), t.TempDir(), t.TempDir()
			writeFile(t, base, "c.yaml", clusters(10, "1s"))
			writeFile(t, mine, "c.yaml", clusters(12, "2s"))
			writeFile(t, theirs, "c.yaml", clusters(11, "3s"))
			apply(t, cli, prefix, base, ApplyOptions{})

			var other ApplyResult
			opts := ApplyOptions{MaxTxnOps: tc.first, beforeWrite: func(ctx context.Context) {
				other = apply(t, cli, prefix, theirs, ApplyOptions{MaxTxnOps: tc.other, By: "other"})
			}}
			res, err := ApplyEtcd(context.Background(), cli, prefix, mine, opts)
			require.ErrorIs(t, err, ErrApplyConflict)
			assert.Contains(t, err.Error(), "apply again")
			if tc.first == 0 {
				assert.Equal(t, ApplyInPlace, res.Mode)
			} else {
				assert.Equal(t, ApplyNewGeneration, res.Mode)
			}

			// etcd holds the other's content, whole, and nothing of this one.
			dump := etcdDump(t, cli, prefix)
			assert.Equal(t, strconv.FormatInt(other.Generation, 10), dump["/current"].value)
			assert.Contains(t, dump["/applied"].value, `"by":"other"`)
			assert.NotContains(t, dump, "/staging")
			for k := range dump {
				if strings.HasPrefix(k, "/gen/") {
					assert.True(t, strings.HasPrefix(k, "/gen/"+dump["/current"].value+"/"), "only the current generation is left: %s", k)
				}
			}
			cur := generationKeys(dump, other.Generation)
			assert.Len(t, cur, 11)
			for k, kv := range cur {
				assert.Contains(t, kv.value, `"connect_timeout":"3s"`, k)
			}

			// Applied again, it wins.
			res = apply(t, cli, prefix, mine, ApplyOptions{MaxTxnOps: tc.first})
			assert.NotEqual(t, ApplyNone, res.Mode)
			assert.Len(t, generationKeys(etcdDump(t, cli, prefix), res.Generation), 12)
		})
	}
}

// TestApplyEtcdConflictWhileStaging forces another apply between two txns
// that write a new generation: an in-place one wins, and the generation
// half written is deleted; another new generation loses to the one being
// written, which goes on.
func TestApplyEtcdConflictWhileStaging(t *testing.T) {
	for _, tc := range []struct {
		name      string
		otherOps  int
		firstWins bool
	}{
		{"in place wins", 0, false},
		{"new generation loses", 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, prefix := applyEtcd(t)
			base, mine, theirs := t.TempDir(), t.TempDir(), t.TempDir()
			writeFile(t, base, "c.yaml", clusters(10, "1s"))
			writeFile(t, mine, "c.yaml", clusters(40, "2s"))
			writeFile(t, theirs, "c.yaml", clusters(11, "3s"))
			apply(t, cli, prefix, base, ApplyOptions{})

			var otherErr error
			var staged map[string]etcdKV
			opts := ApplyOptions{MaxTxnOps: 8, afterBatch: func(ctx context.Context, txn int) {
				if txn == 2 {
					staged = generationKeys(etcdDump(t, cli, prefix), 2)
					_, otherErr = ApplyEtcd(ctx, cli, prefix, theirs, ApplyOptions{MaxTxnOps: tc.otherOps, By: "other"})
				}
			}}
			res, err := ApplyEtcd(context.Background(), cli, prefix, mine, opts)
			assert.Len(t, staged, 10, "two txns of 5 keys were written when the other ran")
			dump := etcdDump(t, cli, prefix)
			assert.NotContains(t, dump, "/staging")
			if tc.firstWins {
				require.NoError(t, err)
				require.ErrorIs(t, otherErr, ErrApplyConflict)
				assert.Contains(t, otherErr.Error(), "another apply is writing a generation")
				assert.Equal(t, "2", dump["/current"].value)
				assert.Len(t, generationKeys(dump, 2), 40)
				assert.Empty(t, generationKeys(dump, 1))
				return
			}
			require.NoError(t, otherErr)
			require.ErrorIs(t, err, ErrApplyConflict)
			assert.Equal(t, ApplyNewGeneration, res.Mode)
			assert.Equal(t, "1", dump["/current"].value)
			assert.Empty(t, generationKeys(dump, 2), "what was staged is deleted")
			assert.Len(t, generationKeys(dump, 1), 11)
			assert.Contains(t, dump["/applied"].value, `"by":"other"`)
		})
	}
}

// TestApplyEtcdStagingHeld: while another apply writes a new generation (its
// staging key, under its lease), a new generation is refused; an in-place
// apply may go on, and the stager's flip will fail on it.
func TestApplyEtcdStagingHeld(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(10, "1s"))
	apply(t, cli, prefix, dir, ApplyOptions{})

	ctx := context.Background()
	lease, err := cli.Grant(ctx, 30)
	require.NoError(t, err)
	defer cli.Revoke(ctx, lease.ID)
	_, err = cli.Put(ctx, prefix+"/staging", `{"generation":2,"by":"someone"}`, clientv3.WithLease(lease.ID))
	require.NoError(t, err)
	_, err = cli.Put(ctx, prefix+"/gen/2/"+applyClusterKey+"half", `{}`)
	require.NoError(t, err)
	before := etcdDump(t, cli, prefix)

	writeFile(t, dir, "c.yaml", clusters(20, "2s"))
	_, err = ApplyEtcd(ctx, cli, prefix, dir, ApplyOptions{MaxTxnOps: 8})
	require.ErrorIs(t, err, ErrApplyConflict)
	assert.Contains(t, err.Error(), `"by":"someone"`)
	assert.Equal(t, before, etcdDump(t, cli, prefix), "the other's claim and generation untouched")

	// Its lease gone (the other apply died), the next apply takes over and
	// deletes what it left.
	_, err = cli.Revoke(ctx, lease.ID)
	require.NoError(t, err)
	res := apply(t, cli, prefix, dir, ApplyOptions{MaxTxnOps: 8})
	assert.Equal(t, int64(2), res.Generation)
	gen2 := generationKeys(etcdDump(t, cli, prefix), 2)
	assert.Len(t, gen2, 20)
	assert.NotContains(t, gen2, applyClusterKey+"half")
}

// TestApplyEtcdHandEditConflicts: a key of the current generation written by
// hand between the diff and the write makes the in-place txn fail.
func TestApplyEtcdHandEditConflicts(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))
	apply(t, cli, prefix, dir, ApplyOptions{})
	writeFile(t, dir, "c.yaml", clusters(3, "2s"))
	_, err := ApplyEtcd(context.Background(), cli, prefix, dir, ApplyOptions{beforeWrite: func(ctx context.Context) {
		_, err := cli.Put(ctx, prefix+"/gen/1/"+applyClusterKey+"c9", `{}`)
		require.NoError(t, err)
	}})
	require.ErrorIs(t, err, ErrApplyConflict)
	for k, kv := range generationKeys(etcdDump(t, cli, prefix), 1) {
		assert.NotContains(t, kv.value, `"2s"`, k)
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// storeDigests returns the digest of every table of a store, by scope and
// type: equal digests, equal versions to every client.
func storeDigests(st *store.Store) map[string]string {
	out := make(map[string]string)
	v := st.View()
	for _, scope := range v.Scopes() {
		for typeURL, tb := range v.Tables(scope) {
			if tb.Len() > 0 {
				out[scope+" "+typeURL] = fmt.Sprintf("%d %x", tb.Len(), tb.Digest())
			}
		}
	}
	return out
}

// TestApplyEtcdServedAsTheDirectory: what apply writes, the etcd source
// serves exactly as the directory source serves the directory (the same
// resources, so the same versions: S3, D8, a client moving from a replica of
// the directory to one of etcd holds what it would be sent), after an
// in-place change and after a new generation too.
func TestApplyEtcdServedAsTheDirectory(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(5, "1s"))
	writeFile(t, dir, "edge/r.yaml", routes("main", "web"))
	writeFile(t, dir, "edge/web.yaml", cluster("web", "1s"))
	writeFile(t, dir, "edge/lb.yaml", `"@type": type.googleapis.com/envoy.service.discovery.v3.Resource
name: xdstp://auth/envoy.config.endpoint.v3.LbEndpoint/pool/ep1
resource:
  "@type": type.googleapis.com/envoy.config.endpoint.v3.LbEndpoint
  endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}
`)
	check := func(what string) {
		t.Helper()
		fromDir, _ := newSource(t, dir)
		_, err := fromDir.Load(context.Background())
		require.NoError(t, err)
		st := store.New()
		_, err = NewEtcd(cli, prefix, st, EtcdOptions{}).Load(context.Background())
		require.NoError(t, err)
		want := storeDigests(fromDir.st)
		assert.Len(t, want, 4, what) // scope x type
		assert.Equal(t, want, storeDigests(st), what)
	}
	apply(t, cli, prefix, dir, ApplyOptions{})
	check("first apply")
	writeFile(t, dir, "edge/web.yaml", cluster("web", "4s"))
	require.Equal(t, ApplyInPlace, apply(t, cli, prefix, dir, ApplyOptions{}).Mode)
	check("in place")
	writeFile(t, dir, "c.yaml", clusters(30, "2s"))
	require.Equal(t, ApplyNewGeneration, apply(t, cli, prefix, dir, ApplyOptions{MaxTxnOps: 10}).Mode)
	check("new generation")
}

// secrets is a resource file listing n generic secrets s<from>... of size
// bytes each, their content made of fill.
func secrets(from, n, size int, fill string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: s%d\n  generic_secret:\n    secret: {inline_string: %s}\n",
			from+i, strings.Repeat(fill, size))
	}
	return b.String()
}

// TestApplyEtcdWithinEtcdLimits: with etcd's default limits (those of the
// test cluster), large values are split by bytes, and the largest txn apply
// makes is one etcd accepts: what ApplyEtcd counts of a txn's size is not
// less than what etcd does.
func TestApplyEtcdWithinEtcdLimits(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	const size = 40 * 1024
	writeFile(t, dir, "s.yaml", secrets(0, 100, size, "a"))
	res := apply(t, cli, prefix, dir, ApplyOptions{})
	assert.Equal(t, ApplyNewGeneration, res.Mode)
	assert.GreaterOrEqual(t, res.Txns, 2+3, "4 MB in txns of 1.5 MiB at most")

	// 37 changed values of 40 KiB (1.52 MB) fit one txn, just: in place.
	writeFile(t, dir, "s.yaml", secrets(0, 37, size, "b")+secrets(37, 63, size, "a"))
	res = apply(t, cli, prefix, dir, ApplyOptions{})
	assert.Equal(t, ApplyInPlace, res.Mode)
	assert.Len(t, res.Changed, 37)
	// 40 of them (1.6 MB) do not: a new generation.
	writeFile(t, dir, "s.yaml", secrets(0, 40, size, "c")+secrets(40, 60, size, "a"))
	res = apply(t, cli, prefix, dir, ApplyOptions{})
	assert.Equal(t, ApplyNewGeneration, res.Mode)
	assert.Len(t, res.Changed, 40)
	assert.Len(t, generationKeys(etcdDump(t, cli, prefix), res.Generation), 100)
}

// TestApplyEtcdReplicaSeesAllOrNothing runs the etcd source (a replica)
// while apply writes: a change written in place, and one written as a new
// generation in many txns, each reach the replica's store as one commit, the
// old content whole or the new whole, never a state in between.
func TestApplyEtcdReplicaSeesAllOrNothing(t *testing.T) {
	cli, prefix := applyEtcd(t)
	v1, v2, v3 := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, v1, "c.yaml", clusters(20, "1s"))
	writeFile(t, v2, "c.yaml", clustersFrom(0, 3, "2s")+clustersFrom(3, 17, "1s")) // c0-c2 changed
	for i := range 4 {
		writeFile(t, v3, fmt.Sprintf("s%d/c.yaml", i), clusters(60, "3s"))
	}
	apply(t, cli, prefix, v1, ApplyOptions{})

	digestsOf := func(dir string) map[string]string {
		fromDir, _ := newSource(t, dir)
		_, err := fromDir.Load(context.Background())
		require.NoError(t, err)
		return storeDigests(fromDir.st)
	}
	want := []map[string]string{digestsOf(v1), digestsOf(v2), digestsOf(v3)}

	st := store.New()
	var (
		mu   sync.Mutex
		seen []map[string]string
	)
	src := NewEtcd(cli, prefix, st, EtcdOptions{OnReload: func(o Outcome, _ store.Result) {
		if o == Applied {
			mu.Lock()
			seen = append(seen, storeDigests(st)) // the source commits one at a time
			mu.Unlock()
		}
	}})
	runEtcd(t, src)
	seenNow := func() []map[string]string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	eventuallyLong(t, "the first content", func() bool { return len(seenNow()) == 1 })

	res := apply(t, cli, prefix, v2, ApplyOptions{})
	require.Equal(t, ApplyInPlace, res.Mode)
	require.Len(t, res.Changed, 3)
	eventuallyLong(t, "the in-place change", func() bool { return len(seenNow()) == 2 })
	res = apply(t, cli, prefix, v3, ApplyOptions{MaxTxnOps: 16})
	require.Equal(t, ApplyNewGeneration, res.Mode)
	require.Greater(t, res.Txns, 10)
	eventuallyLong(t, "the new generation", func() bool { return len(seenNow()) >= 3 })

	// Every state the replica went through is one of the three, in order.
	assert.Equal(t, want, seenNow())
}
