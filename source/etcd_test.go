package source

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// The tests of the etcd source run against the cluster of .ci/etcd.sh, each
// under a prefix of its own (internal/etcdtest).

// clusterValue is the etcd value of a STATIC cluster, as a config file holds it.
func clusterValue(name, timeout string) string {
	return `{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "` + name +
		`", "type": "STATIC", "connect_timeout": "` + timeout + `", "load_assignment": {"cluster_name": "` + name +
		`", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}}`
}

// clusterKey is the key of cluster name in scope of generation gen.
func clusterKey(prefix, gen, scope, name string) string {
	return EtcdResourceKey(prefix, gen, scope, protocol.TypeCluster, name)
}

func put(t testing.TB, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	resp, err := cli.Put(context.Background(), key, value)
	require.NoError(t, err)
	return resp.Header.Revision
}

// putRetry writes key, trying again for 30s while the cluster elects a
// leader (a killed member may have been the leader).
func putRetry(t testing.TB, cli *clientv3.Client, key, value string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, key, value)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: %v", key, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func txn(t testing.TB, cli *clientv3.Client, ops ...clientv3.Op) int64 {
	t.Helper()
	resp, err := cli.Txn(context.Background()).Then(ops...).Commit()
	require.NoError(t, err)
	return resp.Header.Revision
}

// commitLog records the commits of an Etcd source.
type commitLog struct {
	mu       sync.Mutex
	outcomes []Outcome
	results  []store.Result
}

func (l *commitLog) record(o Outcome, r store.Result) {
	l.mu.Lock()
	l.outcomes, l.results = append(l.outcomes, o), append(l.results, r)
	l.mu.Unlock()
}

func (l *commitLog) count(o Outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.outcomes {
		if x == o {
			n++
		}
	}
	return n
}

func (l *commitLog) applied() []store.Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []store.Result
	for i, o := range l.outcomes {
		if o == Applied {
			out = append(out, l.results[i])
		}
	}
	return out
}

func newEtcdSource(t testing.TB, cli *clientv3.Client, prefix string) (*Etcd, *store.Store, *commitLog) {
	t.Helper()
	st := store.New()
	log := &commitLog{}
	e := NewEtcd(cli, prefix, st, EtcdOptions{
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		ProbeInterval: 100 * time.Millisecond, RequestTimeout: time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		ListPage: 2, // several pages for the smallest test
		OnReload: log.record,
	})
	return e, st, log
}

// runEtcd runs e until the test ends.
func runEtcd(t testing.TB, e *Etcd) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context's end")
		}
	})
}

// eventuallyLong is eventually with room for etcd to elect a leader.
func eventuallyLong(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// versionFor returns the version a cluster value gets in a scratch store.
func versionFor(t testing.TB, name, timeout string) string {
	t.Helper()
	r, err := parseEtcdValue("/k", protocol.TypeCluster, name, []byte(clusterValue(name, timeout)), nil)
	require.NoError(t, err)
	st := store.New()
	_, err = st.Commit(store.SetResource("s", r))
	require.NoError(t, err)
	return st.View().Table("s", protocol.TypeCluster).Get(name).Version
}

func names(st *store.Store, scope string) []string {
	var out []string
	if t := st.View().Table(scope, protocol.TypeCluster); t != nil {
		for _, e := range t.Sorted() {
			out = append(out, e.Name)
		}
	}
	return out
}

func TestEtcdListThenWatch(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t, cli)
	put(t, cli, EtcdCurrentKey(p), "1")
	put(t, cli, clusterKey(p, "1", "edge", "a"), clusterValue("a", "1s"))
	put(t, cli, clusterKey(p, "1", "edge", "b"), clusterValue("b", "1s"))
	put(t, cli, clusterKey(p, "1", DefaultScope, "c"), clusterValue("c", "1s"))
	put(t, cli, clusterKey(p, "1", "edge", "xdstp://auth/envoy.config.cluster.v3.Cluster/d"), clusterValue("xdstp://auth/envoy.config.cluster.v3.Cluster/d", "1s"))
	put(t, cli, clusterKey(p, "2", "edge", "other-gen"), clusterValue("other-gen", "1s"))
	last := put(t, cli, p+"/nodes/r1/n1", `{"not":"a resource"}`)

	e, st, _ := newEtcdSource(t, cli, p)
	_, err := e.Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "xdstp://auth/envoy.config.cluster.v3.Cluster/d"}, names(st, "edge"))
	assert.Equal(t, []string{"c"}, names(st, DefaultScope))
	s := e.Status()
	assert.Equal(t, KindEtcd, s.Kind)
	assert.Contains(t, s.Location, p)
	assert.Equal(t, "1", s.Generation)
	assert.Equal(t, last, s.EtcdRevision, "listed at the revision of the last write")
	assert.Equal(t, map[string]int{"edge": 3, DefaultScope: 1}, s.Scopes)
	assert.Empty(t, s.Errors)
	assert.True(t, s.Loaded)

	runEtcd(t, e)
	put(t, cli, clusterKey(p, "1", "edge", "e"), clusterValue("e", "1s"))
	_, err = cli.Delete(context.Background(), clusterKey(p, "1", "edge", "a"))
	require.NoError(t, err)
	put(t, cli, clusterKey(p, "1", "new-scope", "f"), clusterValue("f", "1s"))
	eventually(t, "the watch applying the changes", func() bool {
		return strings.Join(names(st, "new-scope"), ",") == "f"
	})
	assert.Equal(t, []string{"b", "e", "xdstp://auth/envoy.config.cluster.v3.Cluster/d"}, names(st, "edge"))
}

// All the events of one etcd revision (a txn) are one commit: the store never
// holds part of it; revisions are applied one commit each, in order.
func TestEtcdOneRevisionOneCommit(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t, cli)
	put(t, cli, EtcdCurrentKey(p), "1")
	put(t, cli, clusterKey(p, "1", "edge", "old"), clusterValue("old", "1s"))
	e, st, log := newEtcdSource(t, cli, p)
	_, err := e.Load(context.Background())
	require.NoError(t, err)
	before := st.View().Revision()
	runEtcd(t, e)

	txn(t, cli,
		clientv3.OpPut(clusterKey(p, "1", "edge", "x"), clusterValue("x", "1s")),
		clientv3.OpPut(clusterKey(p, "1", "edge", "y"), clusterValue("y", "1s")),
		clientv3.OpPut(clusterKey(p, "1", "other", "z"), clusterValue("z", "1s")),
		clientv3.OpDelete(clusterKey(p, "1", "edge", "old")))
	eventually(t, "the txn applied", func() bool { return len(names(st, "other")) == 1 })
	v := st.View()
	assert.Equal(t, before+1, v.Revision(), "one store revision for the whole txn")
	assert.Equal(t, []string{"x", "y"}, names(st, "edge"))
	for _, n := range []string{"x", "y"} {
		assert.Equal(t, before+1, v.Table("edge", protocol.TypeCluster).Get(n).Revision)
	}
	assert.Equal(t, before+1, v.Table("other", protocol.TypeCluster).Get("z").Revision)
	applied := log.applied()
	require.Len(t, applied, 2) // the load, the txn
	assert.Equal(t, store.Result{Revision: before + 1, Set: 3, Deleted: 1, Scopes: []string{"edge", "other"}}, applied[1])

	// Five revisions of one key, written back to back: five commits, the last
	// one wins.
	timeouts := []string{"2s", "3s", "4s", "5s", "6s"}
	var last int64
	for _, to := range timeouts {
		last = put(t, cli, clusterKey(p, "1", "edge", "x"), clusterValue("x", to))
	}
	eventually(t, "the last revision applied", func() bool { return e.Status().EtcdRevision == last })
	assert.Equal(t, versionFor(t, "x", "6s"), versionOf(st, "edge", "x"))
	applied = log.applied()
	require.Len(t, applied, 2+len(timeouts), "one commit per etcd revision")
	for i := range timeouts {
		assert.Equal(t, before+2+uint64(i), applied[2+i].Revision, "in revision order")
		assert.Equal(t, 1, applied[2+i].Set)
	}
}

func TestEtcdInvalidValueRefused(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t, cli)
	put(t, cli, EtcdCurrentKey(p), "1")
	put(t, cli, clusterKey(p, "1", "edge", "good"), clusterValue("good", "1s"))
	put(t, cli, clusterKey(p, "1", "edge", "syntax"), `{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": `)
	put(t, cli, clusterKey(p, "1", "edge", "named"), clusterValue("other-name", "1s"))
	put(t, cli, EtcdResourceKey(p, "1", "edge", protocol.TypeListener, "wrongtype"), clusterValue("wrongtype", "1s"))
	put(t, cli, clusterKey(p, "1", "edge", "invalid"), clusterValue("invalid", "-1s"))
	put(t, cli, EtcdGenPrefix(p, "1")+"edge/no-name", clusterValue("no-name", "1s"))

	e, st, log := newEtcdSource(t, cli, p)
	_, err := e.Load(context.Background())
	require.NoError(t, err, "refused values do not fail the load")
	assert.Equal(t, []string{"good"}, names(st, "edge"))
	s := e.Status()
	assert.Equal(t, 5, s.Rejected)
	require.Len(t, s.Errors, 5)
	for _, k := range []string{"invalid", "named", "syntax", "edge/no-name"} {
		found := false
		for _, line := range s.Errors {
			found = found || strings.Contains(line, "/gen/1/edge/") && strings.Contains(line, k)
		}
		assert.True(t, found, "an error names the key of %s: %q", k, s.Errors)
	}
	assert.Contains(t, strings.Join(s.Errors, "\n"), `the value names the resource "other-name", the key "named"`)
	assert.Contains(t, strings.Join(s.Errors, "\n"), "the value is a CDS")

	// Through the watch: a bad value of a served key keeps the last good one,
	// and the rest of the same revision is applied.
	runEtcd(t, e)
	goodVersion := versionOf(st, "edge", "good")
	txn(t, cli,
		clientv3.OpPut(clusterKey(p, "1", "edge", "good"), clusterValue("good", "-5s")),
		clientv3.OpPut(clusterKey(p, "1", "edge", "more"), clusterValue("more", "1s")))
	eventually(t, "the valid half applied", func() bool { return len(names(st, "edge")) == 2 })
	assert.Equal(t, goodVersion, versionOf(st, "edge", "good"), "the last good value is served")
	s = e.Status()
	assert.Equal(t, 6, s.Rejected)
	assert.Len(t, s.Errors, 6)
	assert.Equal(t, 6, log.count(Rejected), "each refused value is counted once")

	// Fixed: applied, and no longer an error; deleting a refused key clears it.
	put(t, cli, clusterKey(p, "1", "edge", "good"), clusterValue("good", "7s"))
	_, err = cli.Delete(context.Background(), clusterKey(p, "1", "edge", "syntax"))
	require.NoError(t, err)
	eventually(t, "the fix applied", func() bool { return versionOf(st, "edge", "good") == versionFor(t, "good", "7s") })
	eventually(t, "the errors of fixed keys gone", func() bool { return len(e.Status().Errors) == 4 })
	assert.Equal(t, 6, e.Status().Rejected)
}

// A watch cancelled by a compaction lists again and reconciles.
func TestEtcdCompactionRelists(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t, cli)
	put(t, cli, EtcdCurrentKey(p), "1")
	put(t, cli, clusterKey(p, "1", "edge", "a"), clusterValue("a", "1s"))
	e, st, log := newEtcdSource(t, cli, p)
	_, err := e.Load(context.Background())
	require.NoError(t, err)
	from := e.Status().EtcdRevision

	// Changes made while the source does not watch, then compacted away.
	put(t, cli, clusterKey(p, "1", "edge", "b"), clusterValue("b", "1s"))
	_, err = cli.Delete(context.Background(), clusterKey(p, "1", "edge", "a"))
	require.NoError(t, err)
	last := put(t, cli, p+"/unrelated", "x")
	_, err = cli.Compact(context.Background(), last)
	require.NoError(t, err)
	require.Greater(t, last, from+1)

	runEtcd(t, e)
	eventually(t, "the source listing again", func() bool { return e.Status().EtcdRevision >= last })
	assert.Equal(t, []string{"b"}, names(st, "edge"))
	applied := log.applied()
	require.Len(t, applied, 2)
	assert.Equal(t, 1, applied[1].Set)
	assert.Equal(t, 1, applied[1].Deleted)

	// And it watches after that.
	put(t, cli, clusterKey(p, "1", "edge", "c"), clusterValue("c", "1s"))
	eventually(t, "the watch after the list", func() bool { return len(names(st, "edge")) == 2 })
}

func TestEtcdGenerationSwitch(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t, cli)
	put(t, cli, EtcdCurrentKey(p), "1")
	put(t, cli, clusterKey(p, "1", "edge", "a"), clusterValue("a", "1s"))
	put(t, cli, clusterKey(p, "1", "edge", "b"), clusterValue("b", "1s"))
	put(t, cli, clusterKey(p, "1", "gone", "g"), clusterValue("g", "1s"))
	e, st, log := newEtcdSource(t, cli, p)
	runEtcd(t, e)
	eventually(t, "generation 1 served", func() bool { return len(names(st, "edge")) == 2 })

	// Generation 2, written while 1 is served: nothing of it is applied until
	// current flips.
	put(t, cli, clusterKey(p, "2", "edge", "b"), clusterValue("b", "2s"))
	put(t, cli, clusterKey(p, "2", "edge", "c"), clusterValue("c", "1s"))
	marker := put(t, cli, clusterKey(p, "1", "edge", "marker"), clusterValue("marker", "1s"))
	eventually(t, "the marker of generation 1", func() bool { return e.Status().EtcdRevision >= marker })
	assert.Equal(t, []string{"a", "b", "marker"}, names(st, "edge"), "generation 2 not applied before the flip")
	before := len(log.applied())

	put(t, cli, EtcdCurrentKey(p), "2")
	eventually(t, "generation 2 served", func() bool { return e.Status().Generation == "2" })
	assert.Equal(t, []string{"b", "c"}, names(st, "edge"))
	assert.Empty(t, names(st, "gone"), "a scope absent from the new generation is emptied")
	assert.False(t, st.View().HasScope("gone") && len(names(st, "gone")) > 0)
	assert.Equal(t, versionFor(t, "b", "2s"), versionOf(st, "edge", "b"))
	assert.Len(t, log.applied(), before+1, "the switch is one commit")

	// The old generation is no longer read.
	put(t, cli, clusterKey(p, "1", "edge", "late"), clusterValue("late", "1s"))
	put(t, cli, clusterKey(p, "2", "edge", "d"), clusterValue("d", "1s"))
	eventually(t, "a change of generation 2", func() bool { return len(names(st, "edge")) == 3 })
	assert.Equal(t, []string{"b", "c", "d"}, names(st, "edge"))

	// A route to a cluster the scope does not hold is served, with a warning,
	// until the cluster comes.
	put(t, cli, EtcdResourceKey(p, "2", "edge", protocol.TypeRoute, "r"),
		`{"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "missing"}}]}]}`)
	eventually(t, "the dangling reference warned about", func() bool { return len(e.Status().Warnings) == 1 })
	assert.Contains(t, e.Status().Warnings[0], `scope "edge": RDS "r" refers to CDS "missing"`)
	assert.NotNil(t, st.View().Table("edge", protocol.TypeRoute).Get("r"), "served")
	put(t, cli, clusterKey(p, "2", "edge", "missing"), clusterValue("missing", "1s"))
	eventually(t, "the warning gone", func() bool { return len(e.Status().Warnings) == 0 })

	// current deleted: generation "0", nothing served.
	_, err := cli.Delete(context.Background(), EtcdCurrentKey(p))
	require.NoError(t, err)
	eventually(t, "generation 0", func() bool { return e.Status().Generation == "0" })
	assert.Empty(t, names(st, "edge"))
	assert.Nil(t, st.View().Table("edge", protocol.TypeRoute).Get("r"))
}

// A snapshot restored at start is kept while etcd holds nothing for the
// prefix, and replaced by the first content.
func TestEtcdKeepRestored(t *testing.T) {
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t, cli)
	e, st, _ := newEtcdSource(t, cli, p)
	r, err := parseEtcdValue("/k", protocol.TypeCluster, "restored", []byte(clusterValue("restored", "1s")), nil)
	require.NoError(t, err)
	_, err = st.Commit(store.SetResource("edge", r))
	require.NoError(t, err)
	e.KeepRestored()
	_, err = e.Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"restored"}, names(st, "edge"))
	assert.NotEmpty(t, e.Status().Errors)

	runEtcd(t, e)
	txn(t, cli, clientv3.OpPut(EtcdCurrentKey(p), "1"), clientv3.OpPut(clusterKey(p, "1", "edge", "new"), clusterValue("new", "1s")))
	eventually(t, "the content replacing the snapshot", func() bool { return strings.Join(names(st, "edge"), ",") == "new" })
	assert.Empty(t, e.Status().Errors)
}

// One member killed changes nothing; all of them stopped: the last content
// is served, Status says so, and changes flow again when etcd is back.
func TestEtcdMembersDown(t *testing.T) {
	cli, members := etcdtest.Disrupt(t)
	p := etcdtest.Prefix(t, cli)
	put(t, cli, EtcdCurrentKey(p), "1")
	put(t, cli, clusterKey(p, "1", "edge", "a"), clusterValue("a", "1s"))
	e, st, _ := newEtcdSource(t, cli, p)
	runEtcd(t, e)
	eventually(t, "loaded", func() bool { return len(names(st, "edge")) == 1 })

	for i := range 3 {
		members.Stop(i)
		putRetry(t, cli, clusterKey(p, "1", "edge", fmt.Sprintf("m%d", i)), clusterValue(fmt.Sprintf("m%d", i), "1s"))
		eventuallyLong(t, fmt.Sprintf("the change made with member %d down", i), func() bool { return len(names(st, "edge")) == 2+i })
		members.Start(i)
	}
	eventuallyLong(t, "not stale", func() bool { return e.Status().Stale == "" })

	members.StopAll()
	served := st.View().Revision()
	eventuallyLong(t, "stale", func() bool { return e.Status().Stale != "" })
	s := e.Status()
	assert.Contains(t, s.Stale, "etcd unreachable")
	assert.False(t, s.StaleSince.IsZero())
	assert.Equal(t, served, st.View().Revision(), "the last content is served")
	assert.Len(t, names(st, "edge"), 4)

	members.StartAll()
	putRetry(t, cli, clusterKey(p, "1", "edge", "back"), clusterValue("back", "1s"))
	eventuallyLong(t, "the change made once etcd is back", func() bool { return len(names(st, "edge")) == 5 })
	eventuallyLong(t, "not stale once back", func() bool { return e.Status().Stale == "" })
}

// A replica that starts while etcd is down: Load fails once its context ends,
// saying why, and Status says etcd is unreachable.
func TestEtcdLoadWhileUnreachable(t *testing.T) {
	cli, members := etcdtest.Disrupt(t)
	p := etcdtest.Prefix(t, cli)
	members.StopAll()
	e, st, _ := newEtcdSource(t, cli, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := e.Load(ctx)
	require.Error(t, err)
	assert.Contains(t, e.Status().Stale, "etcd unreachable")
	assert.False(t, e.Status().Loaded)
	assert.Empty(t, st.View().Scopes())
}

func TestParseEtcdAddress(t *testing.T) {
	for in, want := range map[string]EtcdAddress{
		"etcd://h1:2379,h2:2380/p":  {Endpoints: []string{"h1:2379", "h2:2380"}, Prefix: "/p"},
		"etcd://h1/a/b/":            {Endpoints: []string{"h1:2379"}, Prefix: "/a/b"},
		"etcd://127.0.0.1:1":        {Endpoints: []string{"127.0.0.1:1"}, Prefix: DefaultEtcdPrefix},
		"etcd://[::1]:2379,[::2]/":  {Endpoints: []string{"[::1]:2379", "[::2]:2379"}, Prefix: DefaultEtcdPrefix},
		"etcd://h:1/leanxds/prod-1": {Endpoints: []string{"h:1"}, Prefix: "/leanxds/prod-1"},
	} {
		got, err := ParseEtcdAddress(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		back, err := ParseEtcdAddress(got.String())
		require.NoError(t, err)
		assert.Equal(t, got, back)
	}
	for _, bad := range []string{"http://h:1/p", "etcd://", "etcd://h1,,h2/p", "etcd://h:1/a//b", "etcd://::1/p", "h:2379"} {
		_, err := ParseEtcdAddress(bad)
		assert.Error(t, err, bad)
	}
}

func TestEtcdConfig(t *testing.T) {
	a := EtcdAddress{Endpoints: []string{"h:1"}, Prefix: "/p"}
	cfg, err := EtcdConfig(a, EtcdClientOptions{Username: "u", Password: "pw"})
	require.NoError(t, err)
	assert.Equal(t, []string{"h:1"}, cfg.Endpoints)
	assert.Equal(t, "u", cfg.Username)
	assert.Nil(t, cfg.TLS)
	_, err = EtcdConfig(a, EtcdClientOptions{CertFile: "c.pem"})
	assert.ErrorContains(t, err, "--etcd-key")
	_, err = EtcdConfig(a, EtcdClientOptions{Username: "u"})
	assert.ErrorContains(t, err, EnvEtcdPassword)
	_, err = EtcdConfig(a, EtcdClientOptions{CAFile: "/nonexistent/ca.pem"})
	assert.ErrorContains(t, err, "--etcd-ca")
	u, pw := EtcdCredentialsFromEnv(envMap{EnvEtcdUsername: "x", EnvEtcdPassword: "y"}.get)
	assert.Equal(t, [2]string{"x", "y"}, [2]string{u, pw})
}

type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }
