package store_test

import (
	"fmt"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// clusters returns a ReplaceScope of scope and a Set of n clusters, the one
// named changed (if any) with another connect timeout.
func clusters(n int, changed string) []store.Change {
	out := []store.Change{store.ReplaceScope(scope)}
	for i := range n {
		name := fmt.Sprintf("c%03d", i)
		c := xdstest.Cluster(name)
		if name == changed {
			c = xdstest.Cluster(name, xdstest.WithConnectTimeout(7*time.Second))
		}
		out = append(out, store.Set(scope, c))
	}
	return out
}

// A whole-scope commit that repeats what the store holds changes nothing and
// copies nothing; one that changes one resource copies only that resource's
// table, and deletes nothing.
func TestReplaceScopeCostsWhatItChanges(t *testing.T) {
	st := store.New()
	commit(t, st, append(clusters(100, ""), store.Set(scope, xdstest.Endpoints("c000", "10.0.0.1:80")))...)
	before := st.View()

	res := commit(t, st, append(clusters(100, ""), store.Set(scope, xdstest.Endpoints("c000", "10.0.0.1:80")))...)
	assert.Equal(t, store.Result{Revision: before.Revision(), Unchanged: 101}, res)
	assert.Same(t, before.Table(scope, protocol.TypeCluster), st.View().Table(scope, protocol.TypeCluster))

	res = commit(t, st, append(clusters(100, "c042"), store.Set(scope, xdstest.Endpoints("c000", "10.0.0.1:80")))...)
	assert.Equal(t, store.Result{Revision: before.Revision() + 1, Set: 1, Unchanged: 100, Scopes: []string{scope}}, res)
	after := st.View()
	assert.Same(t, before.Table(scope, protocol.TypeEndpoint), after.Table(scope, protocol.TypeEndpoint),
		"a table the commit does not change is not copied")
	names, ok := after.Table(scope, protocol.TypeCluster).ChangedSince(before.Revision())
	require.True(t, ok)
	assert.Equal(t, []string{"c042"}, names)
	assert.Equal(t, 100, after.Table(scope, protocol.TypeCluster).Len())
}

// ReplaceScope deletes exactly what the commit does not set, whether the
// commit sets as many names as the table holds (a rename) or fewer, and
// whether the names it keeps are unchanged or not.
func TestReplaceScopeDeletesWhatItDoesNotSet(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("b")),
		store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")))

	// As many names as the table holds, one of them new: b goes.
	res := commit(t, st, store.ReplaceScope(scope), store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("c")),
		store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")))
	assert.Equal(t, 1, res.Set)
	assert.Equal(t, 1, res.Deleted)
	assert.Equal(t, 2, res.Unchanged)
	v := st.View()
	assert.Nil(t, v.Table(scope, protocol.TypeCluster).Get("b"))
	assert.NotNil(t, v.Table(scope, protocol.TypeCluster).Get("c"))

	// A changed resource is kept; a type the commit sets nothing of is emptied.
	res = commit(t, st, store.ReplaceScope(scope), store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(3*time.Second))),
		store.Set(scope, xdstest.Cluster("c")))
	assert.Equal(t, store.Result{Revision: res.Revision, Set: 1, Deleted: 1, Unchanged: 1, Scopes: []string{scope}}, res)
	v = st.View()
	assert.Equal(t, 2, v.Table(scope, protocol.TypeCluster).Len())
	assert.Zero(t, v.Table(scope, protocol.TypeEndpoint).Len())

	// An explicit Delete and a ReplaceScope of the same scope delete once.
	res = commit(t, st, store.ReplaceScope(scope), store.Delete(scope, protocol.TypeCluster, "c"),
		store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(3*time.Second))))
	assert.Equal(t, store.Result{Revision: res.Revision, Deleted: 1, Unchanged: 1, Scopes: []string{scope}}, res)
	assert.Equal(t, []string{"a"}, entryNames(st.View().Table(scope, protocol.TypeCluster)))
}

func entryNames(t *store.Table) []string {
	var out []string
	for _, e := range t.Sorted() {
		out = append(out, e.Name)
	}
	return out
}

// A name set twice in one commit is refused, even when both Sets repeat what
// the store holds.
func TestRepeatedUnchangedSetIsRejected(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("web")))
	_, err := st.Commit(store.Set(scope, xdstest.Cluster("web")), store.Set(scope, xdstest.Cluster("web")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `CDS "web" in scope "edge" is also set by change #0`)
}

// A Set the store found unchanged when it prepared the commit is prepared
// again if another commit changed that resource before this one took the
// writer lock: the commit then sets it, rather than keep the other content.
func TestUnchangedSetIsCheckedAgainstTheLatestState(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("web")))
	old := st.View()
	commit(t, st, store.Set(scope, xdstest.Cluster("web", xdstest.WithConnectTimeout(5*time.Second))))

	res, err := st.CommitPreparedAt(old, store.Set(scope, xdstest.Cluster("web")))
	require.NoError(t, err)
	assert.Equal(t, 1, res.Set)
	assert.Equal(t, old.Table(scope, protocol.TypeCluster).Get("web").Version,
		st.View().Table(scope, protocol.TypeCluster).Get("web").Version)

	// And it is validated then: a message whose own name is not the name it
	// is set under is refused whatever the store held.
	_, err = st.CommitPreparedAt(old, store.SetNamed(scope, "other", xdstest.Cluster("web")))
	require.Error(t, err)
}

// A resource resources validated already is not validated again by the
// store; a raw message, or a Resource changed after it was checked, is.
func TestSetResourceIsValidatedOnce(t *testing.T) {
	c := xdstest.Cluster("web")
	r, err := resources.Check(protocol.TypeCluster, "", c)
	require.NoError(t, err)
	require.True(t, r.Validated())
	// Break the message behind the check's back (which a caller must not do):
	// only a second validation would notice.
	c.ConnectTimeout = durationpb.New(-time.Second)

	st := store.New()
	_, err = st.Commit(store.SetResource(scope, r))
	require.NoError(t, err, "a validated resource is not validated again")

	_, err = st.Commit(store.SetNamed("other", "web", c))
	require.Error(t, err, "a raw message is validated")
	assert.Contains(t, err.Error(), "connect_timeout")

	renamed := r
	renamed.Name = "web2"
	assert.False(t, renamed.Validated())
	_, err = st.Commit(store.SetResource("other", renamed))
	require.Error(t, err, "a resource changed since it was checked is validated")

	// Its encoding was made when it was checked: committed again, it is
	// compared as it was then, not encoded again (the message changed since,
	// which a caller must not do, and the store does not see it).
	res := commit(t, st, store.SetResource(scope, r))
	assert.Equal(t, 1, res.Unchanged)

	unchecked := resources.Resource{TypeURL: protocol.TypeCluster, Name: "web", Message: c}
	assert.False(t, unchecked.Validated())
	_, err = st.Commit(store.SetResource("other", unchecked))
	require.Error(t, err)
}

// A validated resource is committed as it was validated: its encoding and its
// references both come from then, so what clients are sent and what push
// order, make before break and View.Dangling read of it agree, even when its
// message was changed in place since (which a caller must not do).
func TestSetResourceCommitsWhatWasChecked(t *testing.T) {
	c := xdstest.Cluster("web")
	r, err := resources.Check(protocol.TypeCluster, "", c)
	require.NoError(t, err)
	c.EdsClusterConfig.ServiceName = "other"
	c.ConnectTimeout = durationpb.New(-time.Second)

	st := store.New()
	commit(t, st, store.SetResource(scope, r), store.Set(scope, xdstest.Endpoints("web", "10.0.0.1:80")))
	e := st.View().Table(scope, protocol.TypeCluster).Get("web")
	require.NotNil(t, e)
	sent, err := resources.Decode(protocol.TypeCluster, e.Body)
	require.NoError(t, err)
	assert.Equal(t, 1*time.Second, sent.(*clusterv3.Cluster).GetConnectTimeout().AsDuration(), "the checked encoding")
	assert.Equal(t, []string{"web"}, e.Refs.Endpoints, "the references of what is sent")
	assert.Empty(t, st.View().Dangling(scope), "web's endpoints exist")
}

// SetEncoded takes a resource as its encoding: the encoding the store holds
// changes nothing; another is decoded, validated and encoded by this build.
func TestSetEncoded(t *testing.T) {
	st := store.New()
	web := xdstest.Cluster("web")
	commit(t, st, store.Set(scope, web))
	held := st.View().Table(scope, protocol.TypeCluster).Get("web")

	res := commit(t, st, store.SetEncoded(scope, protocol.TypeCluster, "web", held.Body))
	assert.Equal(t, 1, res.Unchanged)

	body, err := proto.Marshal(xdstest.Cluster("web", xdstest.WithConnectTimeout(4*time.Second)))
	require.NoError(t, err)
	res = commit(t, st, store.SetEncoded(scope, protocol.TypeCluster, "web", body))
	assert.Equal(t, 1, res.Set)
	e := st.View().Table(scope, protocol.TypeCluster).Get("web")
	assert.Equal(t, protocol.ContentVersion(e.Body), e.Version)
	assert.Equal(t, []string{"web"}, e.Refs.Endpoints)

	_, err = st.Commit(store.SetEncoded(scope, protocol.TypeCluster, "web", []byte{0xff, 0xff}))
	require.Error(t, err, "an undecodable body is refused")

	bad, err := proto.Marshal(xdstest.Cluster("web", xdstest.WithConnectTimeout(-time.Second)))
	require.NoError(t, err)
	_, err = st.Commit(store.SetEncoded(scope, protocol.TypeCluster, "web", bad))
	require.Error(t, err, "an invalid resource is refused")
	assert.Contains(t, err.Error(), "connect_timeout")

	_, err = st.Commit(store.SetEncoded(scope, "type.googleapis.com/nope", "web", held.Body))
	require.ErrorIs(t, err, resources.ErrUnknownType)
}

// CommitChecked shows the check what the commit would publish; a check that
// fails drops the commit.
func TestCommitChecked(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("web")))
	before := st.View()

	var seen store.View
	refuse := fmt.Errorf("refused")
	res, err := st.CommitChecked(func(next store.View, res store.Result) error {
		seen = next
		assert.Equal(t, 1, res.Set)
		return refuse
	}, store.Set(scope, xdstest.Cluster("api")))
	require.ErrorIs(t, err, refuse)
	assert.Equal(t, before.Revision(), res.Revision)
	assert.NotNil(t, seen.Table(scope, protocol.TypeCluster).Get("api"), "the check sees the commit")
	assert.Nil(t, st.View().Table(scope, protocol.TypeCluster).Get("api"), "a refused commit changes nothing")
	assert.Equal(t, before.Revision(), st.View().Revision())

	// A commit that changes nothing is checked against the current view.
	calls := 0
	res, err = st.CommitChecked(func(next store.View, res store.Result) error {
		calls++
		assert.Equal(t, before.Revision(), next.Revision())
		assert.False(t, res.Changed())
		return nil
	}, store.Set(scope, xdstest.Cluster("web")))
	require.NoError(t, err)
	assert.Equal(t, 1, calls)
	assert.Equal(t, 1, res.Unchanged)

	res, err = st.CommitChecked(func(store.View, store.Result) error { return nil }, store.Set(scope, xdstest.Cluster("api")))
	require.NoError(t, err)
	assert.Equal(t, before.Revision()+1, res.Revision)
	assert.NotNil(t, st.View().Table(scope, protocol.TypeCluster).Get("api"))
}

// Dangling reports the references of a scope's resources to what the scope
// does not hold, among those a client asks this server for, in a fixed order.
func TestDangling(t *testing.T) {
	fromFile := xdstest.Cluster("static-eds", xdstest.WithServiceName("from-file"))
	fromFile.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{Path: "/eds.yaml"}}}
	st := store.New()
	commit(t, st,
		store.Set(scope, xdstest.Listener("http", 8080, "routes")),
		store.Set(scope, xdstest.Listener("https", 8443, "xdstp://other/envoy.config.route.v3.RouteConfiguration/r")),
		store.Set(scope, xdstest.SimpleRoute("routes", "web", "api")),
		store.Set(scope, xdstest.Cluster("web")),
		store.Set(scope, xdstest.Endpoints("web", "10.0.0.1:80")),
		store.Set(scope, xdstest.Cluster("api", xdstest.WithUpstreamTLS("tls"))),
		store.Set(scope, fromFile),
		store.Set("other", xdstest.Cluster("alone")),
		store.Set("other", xdstest.Endpoints("alone", "10.0.0.2:80")),
	)
	v := st.View()
	e := v.Table(scope, protocol.TypeCluster).Get("static-eds")
	assert.Equal(t, []string{"from-file"}, e.Refs.Endpoints)
	assert.True(t, e.ServedRefs().Empty(), "endpoints read from a file are not this server's")
	e = v.Table(scope, protocol.TypeCluster).Get("web")
	assert.Equal(t, e.Refs, e.ServedRefs())
	assert.Equal(t, []store.Dangling{
		{FromType: protocol.TypeCluster, From: "api", ToType: protocol.TypeEndpoint, To: "api"},
		{FromType: protocol.TypeCluster, From: "api", ToType: protocol.TypeSecret, To: "tls"},
	}, v.Dangling(scope))
	assert.Equal(t, `CDS "api" refers to EDS "api", which the scope does not hold`, v.Dangling(scope)[0].String())
	assert.Empty(t, v.Dangling("other"))
	assert.Empty(t, v.Dangling("missing"))

	// What a commit would leave dangling, seen before it is published.
	_, err := st.CommitChecked(func(next store.View, _ store.Result) error {
		if d := next.Dangling(scope); len(d) != 3 {
			return fmt.Errorf("dangling: %v", d)
		}
		return nil
	}, store.Delete(scope, protocol.TypeCluster, "web"))
	require.NoError(t, err)
	assert.Contains(t, st.View().Dangling(scope),
		store.Dangling{FromType: protocol.TypeRoute, From: "routes", ToType: protocol.TypeCluster, To: "web"})
}

// An empty encoding is a resource too: an LbEndpoint with every field unset
// encodes to no bytes.
func TestSetEncodedEmptyBody(t *testing.T) {
	st := store.New()
	res := commit(t, st, store.SetEncoded(scope, protocol.TypeLbEndpoint, "leds/0", nil))
	assert.Equal(t, 1, res.Set)
	res = commit(t, st, store.SetEncoded(scope, protocol.TypeLbEndpoint, "leds/0", []byte{}))
	assert.Equal(t, 1, res.Unchanged)
}

// Whole-scope commits racing each other: each is applied whole, against the
// state it finds under the writer lock, so the store always holds one of them
// exactly, never a mix of what each found unchanged.
func TestConcurrentReplaceScopes(t *testing.T) {
	st := store.New()
	commit(t, st, clusters(50, "")...)
	variants := [][]store.Change{clusters(50, "c007"), clusters(50, "c033"), clusters(50, "")}
	want := make([]protocol.Digest, len(variants))
	for i, v := range variants {
		ref := store.New()
		commit(t, ref, v...)
		want[i] = ref.View().Table(scope, protocol.TypeCluster).Digest()
	}
	done := make(chan error, 2)
	for w := range 2 {
		go func() {
			var err error
			for i := range 200 {
				if _, err = st.Commit(variants[(i+w)%len(variants)]...); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 2 {
		require.NoError(t, <-done)
	}
	assert.Contains(t, want, st.View().Table(scope, protocol.TypeCluster).Digest())
	for i := range variants {
		commit(t, st, variants[i]...)
		assert.Equal(t, want[i], st.View().Table(scope, protocol.TypeCluster).Digest(), "variant %d", i)
	}
}
