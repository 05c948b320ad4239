package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

const scope = "edge"

func commit(t testing.TB, st *store.Store, changes ...store.Change) store.Result {
	t.Helper()
	res, err := st.Commit(changes...)
	require.NoError(t, err)
	return res
}

func TestSetGetAndContentVersion(t *testing.T) {
	st := store.New()
	c := xdstest.Cluster("web")
	res := commit(t, st, store.Set(scope, c))
	assert.Equal(t, store.Result{Revision: 1, Set: 1, Scopes: []string{"edge"}}, res)

	e := st.View().Table(scope, protocol.TypeCluster).Get("web")
	require.NotNil(t, e)
	assert.Equal(t, "web", e.Name)
	assert.Equal(t, protocol.TypeCluster, e.TypeURL)
	assert.Equal(t, uint64(1), e.Revision)
	got := &clusterv3.Cluster{}
	require.NoError(t, proto.Unmarshal(e.Body, got))
	assert.True(t, proto.Equal(c, got), "the stored bytes decode to the committed resource")
	// S3, D8: the version is a function of the content alone, so a second store
	// (another process, after a restart) gives the same content the same version.
	other := store.New()
	commit(t, other, store.Set("elsewhere", xdstest.Cluster("web")))
	assert.Equal(t, e.Version, other.View().Table("elsewhere", protocol.TypeCluster).Get("web").Version)
	assert.Equal(t, protocol.ContentVersion(e.Body), e.Version)
	assert.Equal(t, []string{"edge"}, st.View().Scopes())
	assert.True(t, st.View().HasScope("edge"))
	assert.False(t, st.View().HasScope("other"))
}

func TestIdenticalCommitChangesNothing(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("web")), store.Set(scope, xdstest.Endpoints("web", "10.0.0.1:80")))
	before := st.View()
	st.WaitNotified()
	w := st.NewWatcher()
	defer w.Close()
	w.Watch(scope, protocol.TypeCluster)

	res := commit(t, st, store.Set(scope, xdstest.Cluster("web")), store.Set(scope, xdstest.Endpoints("web", "10.0.0.1:80")))
	assert.False(t, res.Changed())
	assert.Equal(t, store.Result{Revision: 1, Unchanged: 2}, res)
	after := st.View()
	assert.Equal(t, before.Revision(), after.Revision())
	assert.Same(t, before.Table(scope, protocol.TypeCluster), after.Table(scope, protocol.TypeCluster),
		"a commit that changes nothing publishes nothing")

	// A real change is signalled; the dedup commit before it was not.
	commit(t, st, store.Set(scope, xdstest.Cluster("web", xdstest.WithConnectTimeout(3*time.Second))))
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal for a changed cluster")
	}
	select {
	case <-w.C:
		t.Fatal("a second signal: the identical commit woke the watcher")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestDeleteAndReplaceScope(t *testing.T) {
	st := store.New()
	commit(t, st,
		store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("b")),
		store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")),
		store.Set("other", xdstest.Cluster("z")))

	res := commit(t, st, store.Delete(scope, protocol.TypeCluster, "b"), store.Delete(scope, protocol.TypeCluster, "missing"))
	assert.Equal(t, store.Result{Revision: 2, Deleted: 1, Scopes: []string{"edge"}}, res)
	assert.Nil(t, st.View().Table(scope, protocol.TypeCluster).Get("b"))
	assert.Equal(t, 1, st.View().Table(scope, protocol.TypeCluster).Len())

	// ReplaceScope: the commit is the whole scope; what it does not set is gone,
	// other scopes are untouched, and what it sets unchanged is not re-versioned.
	res = commit(t, st, store.ReplaceScope(scope), store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("c")))
	assert.Equal(t, store.Result{Revision: 3, Set: 1, Deleted: 1, Unchanged: 1, Scopes: []string{"edge"}}, res)
	v := st.View()
	assert.Nil(t, v.Table(scope, protocol.TypeEndpoint).Get("a"))
	assert.Equal(t, uint64(1), v.Table(scope, protocol.TypeCluster).Get("a").Revision)
	assert.Equal(t, uint64(3), v.Table(scope, protocol.TypeCluster).Get("c").Revision)
	assert.NotNil(t, v.Table("other", protocol.TypeCluster).Get("z"))

	commit(t, st, store.ReplaceScope(scope))
	assert.False(t, st.View().HasScope(scope))
	assert.Equal(t, []string{"other"}, st.View().Scopes())
}

func TestInvalidCommitIsRejectedWhole(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("web")))
	bad := xdstest.Cluster("broken")
	bad.ConnectTimeout = durationpb.New(-time.Second)

	res, err := st.Commit(store.Set(scope, xdstest.Cluster("new")), store.Set(scope, bad), store.Delete(scope, protocol.TypeCluster, "web"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"broken"`, "the error names the resource")
	assert.Contains(t, err.Error(), "connect_timeout", "the error names the field")
	assert.Contains(t, err.Error(), "change #1")
	assert.Equal(t, uint64(1), res.Revision)
	v := st.View()
	assert.Equal(t, uint64(1), v.Revision())
	assert.NotNil(t, v.Table(scope, protocol.TypeCluster).Get("web"), "the rejected commit's delete did not happen")
	assert.Nil(t, v.Table(scope, protocol.TypeCluster).Get("new"), "the rejected commit's valid set did not happen")
}

func TestMalformedChanges(t *testing.T) {
	st := store.New()
	for name, tc := range map[string]struct {
		changes []store.Change
		want    string
	}{
		"set twice":        {[]store.Change{store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("a"))}, "also set by change #0"},
		"set and delete":   {[]store.Change{store.Set(scope, xdstest.Cluster("a")), store.Delete(scope, protocol.TypeCluster, "a")}, "which the same commit sets"},
		"nil resource":     {[]store.Change{store.Set(scope, nil)}, "nil resource"},
		"no name":          {[]store.Change{store.Set(scope, &endpointv3.LbEndpoint{})}, "no name"},
		"unserved type":    {[]store.Change{store.Set(scope, durationpb.New(time.Second))}, "Duration"},
		"unserved delete":  {[]store.Change{store.Delete(scope, "type.googleapis.com/foo.Bar", "x")}, "not served"},
		"zero Change":      {[]store.Change{{}}, "empty change"},
		"nameless cluster": {[]store.Change{store.Set(scope, &clusterv3.Cluster{})}, "no name"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := st.Commit(tc.changes...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, uint64(0), st.View().Revision())
		})
	}
	// LEDS: an LbEndpoint has no name of its own; SetNamed gives it one.
	commit(t, st, store.SetNamed(scope, "xdstp://leds/ep-1", &endpointv3.LbEndpoint{}))
	assert.NotNil(t, st.View().Table(scope, protocol.TypeLbEndpoint).Get("xdstp://leds/ep-1"))
}

func TestChangedSince(t *testing.T) {
	st := store.New()
	r1 := commit(t, st, store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("b"))).Revision
	commit(t, st, store.Set(scope, xdstest.Cluster("c")), store.Set(scope, xdstest.Endpoints("c")))
	commit(t, st, store.Delete(scope, protocol.TypeCluster, "a"), store.Set(scope, xdstest.Cluster("c", xdstest.WithConnectTimeout(5*time.Second))))

	tab := st.View().Table(scope, protocol.TypeCluster)
	names, ok := tab.ChangedSince(r1)
	require.True(t, ok)
	assert.Equal(t, []string{"a", "c"}, names, "changed or deleted after r1, each once, sorted")
	names, ok = tab.ChangedSince(0)
	require.True(t, ok)
	assert.Equal(t, []string{"a", "b", "c"}, names)
	names, ok = tab.ChangedSince(tab.Revision())
	require.True(t, ok)
	assert.Empty(t, names)
	assert.Equal(t, uint64(3), tab.Revision())
	assert.Equal(t, uint64(2), st.View().Table(scope, protocol.TypeEndpoint).Revision())

	// After many more changes than the log keeps, an old revision is reported as
	// too old rather than answered wrongly.
	for i := range 5000 {
		commit(t, st, store.Set(scope, xdstest.Cluster(fmt.Sprintf("n%d", i))))
	}
	tab = st.View().Table(scope, protocol.TypeCluster)
	_, ok = tab.ChangedSince(r1)
	assert.False(t, ok, "a revision older than the log must say so")
	names, ok = tab.ChangedSince(tab.Revision() - 2)
	require.True(t, ok)
	assert.Equal(t, []string{"n4998", "n4999"}, names)
}

func TestDigestIsContentOnly(t *testing.T) {
	a, b := store.New(), store.New()
	commit(t, a, store.Set(scope, xdstest.Cluster("x")), store.Set(scope, xdstest.Cluster("y")))
	commit(t, b, store.Set(scope, xdstest.Cluster("y")))
	commit(t, b, store.Set(scope, xdstest.Cluster("z")))
	commit(t, b, store.Set(scope, xdstest.Cluster("x")), store.Delete(scope, protocol.TypeCluster, "z"))
	ta, tb := a.View().Table(scope, protocol.TypeCluster), b.View().Table(scope, protocol.TypeCluster)
	assert.Equal(t, ta.Digest(), tb.Digest(), "same content reached by other commits: same digest")
	var want protocol.Digest
	for _, e := range ta.Sorted() {
		want ^= protocol.EntryDigest(e.Name, e.Version)
	}
	assert.Equal(t, want, ta.Digest())
	commit(t, b, store.Set(scope, xdstest.Cluster("x", xdstest.WithConnectTimeout(9*time.Second))))
	assert.NotEqual(t, ta.Digest(), b.View().Table(scope, protocol.TypeCluster).Digest())
}

func TestManyNames(t *testing.T) {
	st := store.New()
	var changes []store.Change
	for i := range 10000 {
		changes = append(changes, store.Set(scope, xdstest.Cluster(fmt.Sprintf("c%05d", i))))
	}
	commit(t, st, changes...)
	tab := st.View().Table(scope, protocol.TypeCluster)
	assert.Equal(t, 10000, tab.Len())
	sorted := tab.Sorted()
	require.Len(t, sorted, 10000)
	for i, e := range sorted {
		require.Equal(t, fmt.Sprintf("c%05d", i), e.Name)
		require.Same(t, e, tab.Get(e.Name))
	}
	assert.Nil(t, tab.Get("c10000"))
}

// Readers racing a writer always see whole commits: every commit sets a cluster
// and its endpoints to the same generation, and no reader may see them differ.
func TestConcurrentReadersSeeWholeCommits(t *testing.T) {
	st := store.New()
	gen := func(i int) []store.Change {
		return []store.Change{
			store.Set(scope, xdstest.Cluster("web", xdstest.WithConnectTimeout(time.Duration(i+1)*time.Millisecond))),
			store.Set(scope, xdstest.Endpoints("web", fmt.Sprintf("10.0.0.1:%d", 1000+i))),
			store.Set(scope, xdstest.Cluster(fmt.Sprintf("extra-%d", i%50))),
		}
	}
	commit(t, st, gen(0)...)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				v := st.View()
				c, e := &clusterv3.Cluster{}, &endpointv3.ClusterLoadAssignment{}
				if err := proto.Unmarshal(v.Table(scope, protocol.TypeCluster).Get("web").Body, c); err != nil {
					t.Error(err)
					return
				}
				if err := proto.Unmarshal(v.Table(scope, protocol.TypeEndpoint).Get("web").Body, e); err != nil {
					t.Error(err)
					return
				}
				cg := int(c.ConnectTimeout.AsDuration()/time.Millisecond) - 1
				eg := int(e.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().GetPortValue()) - 1000
				if cg != eg {
					t.Errorf("torn read: cluster at generation %d, endpoints at %d", cg, eg)
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := 1; i <= 300; i++ {
		commit(t, st, gen(i)...)
	}
	stop.Store(true)
	wg.Wait()
	assert.Positive(t, reads.Load())
	assert.Equal(t, uint64(301), st.View().Revision())
}

func TestWatchers(t *testing.T) {
	st := store.New()
	cds, eds := st.NewWatcher(), st.NewWatcher()
	cds.Watch(scope, protocol.TypeCluster)
	eds.Watch(scope, protocol.TypeEndpoint)
	eds.Watch("other", protocol.TypeEndpoint)

	signalled := func(w *store.Watcher) bool {
		select {
		case <-w.C:
			return true
		case <-time.After(2 * time.Second):
			return false
		}
	}
	quiet := func(w *store.Watcher) bool {
		select {
		case <-w.C:
			return false
		case <-time.After(50 * time.Millisecond):
			return true
		}
	}

	commit(t, st, store.Set(scope, xdstest.Cluster("a")))
	assert.True(t, signalled(cds))
	assert.True(t, quiet(eds), "a CDS change does not wake an EDS watcher")

	// One signal per commit, even when it changes several watched pairs.
	commit(t, st, store.Set(scope, xdstest.Endpoints("a")), store.Set("other", xdstest.Endpoints("a")))
	assert.True(t, signalled(eds))
	assert.True(t, quiet(eds))

	// Signals coalesce for a watcher that does not read: many commits, one signal.
	for i := range 10 {
		commit(t, st, store.Set(scope, xdstest.Cluster(fmt.Sprintf("c%d", i))))
	}
	st.WaitNotified()
	assert.True(t, signalled(cds))
	assert.True(t, quiet(cds))

	cds.Unwatch(scope, protocol.TypeCluster)
	commit(t, st, store.Set(scope, xdstest.Cluster("after-unwatch")))
	st.WaitNotified()
	assert.True(t, quiet(cds))
	eds.Close()
	commit(t, st, store.Set(scope, xdstest.Endpoints("b")))
	st.WaitNotified()
	assert.True(t, quiet(eds))
}

func TestTablesInPushOrder(t *testing.T) {
	st := store.New()
	commit(t, st,
		store.Set(scope, xdstest.Listener("l", 8080, "r")),
		store.Set(scope, xdstest.SimpleRoute("r", "a")),
		store.Set(scope, xdstest.Endpoints("a")),
		store.Set(scope, xdstest.Cluster("a")),
		store.Set(scope, xdstest.Secret("s")))
	var got []string
	for typeURL := range st.View().Tables(scope) {
		got = append(got, protocol.Short(typeURL))
	}
	assert.Equal(t, []string{"SDS", "CDS", "EDS", "LDS", "RDS"}, got)
}
