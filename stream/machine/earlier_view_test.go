package machine_test

import (
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

// earlierViews commits endpoints a, b and c (view 1), then changes b and
// deletes c, then changes a (view 3): a rollout serves a node view 1
// (its base) after it was served a newer one when its stage is withdrawn.
func earlierViews(t *testing.T) (v1, v3 store.View) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")), store.Set(scope, xdstest.Endpoints("b", "10.0.0.2:80")),
		store.Set(scope, xdstest.Endpoints("c", "10.0.0.3:80")))
	v1 = st.View()
	commit(t, st, store.Set(scope, xdstest.Endpoints("b", "10.0.0.22:80")), store.Delete(scope, eds, "c"))
	commit(t, st, store.Set(scope, xdstest.Endpoints("a", "10.0.0.11:80")))
	v3 = st.View()
	return v1, v3
}

func entryNames(r *machine.Response) []string {
	var out []string
	for _, e := range r.Resources {
		out = append(out, e.Name)
	}
	return out
}

// A stream served a view older than the one it answered last is sent what
// differs, as it was in the older view: the names changed between the two,
// found from either table's change log (R6: nothing more once it holds it).
func TestEarlierViewSotW(t *testing.T) {
	v1, v3 := earlierViews(t)
	sm := machine.NewSotW(machine.Config{Scope: scope, Node: edgeNode()})
	names := []string{"a", "b", "c"}
	step := func(v store.View, req *discoveryv3.DiscoveryRequest) []*machine.Response {
		t.Helper()
		if req != nil {
			_, err := sm.Receive(req, time.Time{}, v)
			require.NoError(t, err)
		}
		return sm.Responses(v)
	}
	ack := func(v store.View, r *machine.Response) {
		t.Helper()
		require.Empty(t, step(v, &discoveryv3.DiscoveryRequest{TypeUrl: eds, VersionInfo: r.Version, ResponseNonce: r.Nonce, ResourceNames: names}))
	}
	first := step(v1, &discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: eds, ResourceNames: names})
	require.Len(t, first, 1)
	ack(v1, first[0])

	at3 := step(v3, nil)
	require.Len(t, at3, 1)
	assert.Equal(t, []string{"a", "b"}, entryNames(at3[0]), "a and b changed; c is gone")
	ack(v3, at3[0])

	back := step(v1, nil)
	require.Len(t, back, 1, "moved back to view 1")
	r := back[0]
	assert.Equal(t, first[0].Version, r.Version, "the version view 1 had")
	require.Equal(t, []string{"a", "b", "c"}, entryNames(r))
	for i, n := range names {
		assert.Same(t, v1.Table(scope, eds).Get(n), r.Resources[i], "%s as in view 1", n)
	}
	ack(v1, r)
	assert.Empty(t, step(v1, nil), "R6: nothing more at view 1")
}

func TestEarlierViewDelta(t *testing.T) {
	v1, v3 := earlierViews(t)
	d := machine.NewDelta(machine.Config{Scope: scope, Node: edgeNode()})
	step := func(v store.View, req *discoveryv3.DeltaDiscoveryRequest) []*machine.Response {
		t.Helper()
		if req != nil {
			_, err := d.Receive(req, time.Time{}, v)
			require.NoError(t, err)
		}
		return d.Responses(v)
	}
	ack := func(v store.View, r *machine.Response) {
		t.Helper()
		require.Empty(t, step(v, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: eds, ResponseNonce: r.Nonce}))
	}
	first := step(v1, &discoveryv3.DeltaDiscoveryRequest{Node: edgeNode(), TypeUrl: eds, ResourceNamesSubscribe: []string{"a", "b", "c"}})
	require.Len(t, first, 1)
	ack(v1, first[0])

	at3 := step(v3, nil)
	require.Len(t, at3, 1)
	assert.Equal(t, []string{"a", "b"}, entryNames(at3[0]))
	assert.Equal(t, []string{"c"}, at3[0].Removed)
	ack(v3, at3[0])

	back := step(v1, nil)
	require.Len(t, back, 1, "moved back to view 1")
	require.Equal(t, []string{"a", "b", "c"}, entryNames(back[0]), "a and b as they were, c again")
	assert.Empty(t, back[0].Removed)
	for i, n := range []string{"a", "b", "c"} {
		assert.Same(t, v1.Table(scope, eds).Get(n), back[0].Resources[i], "%s as in view 1", n)
	}
	ack(v1, back[0])
	assert.Empty(t, step(v1, nil), "R6: nothing more at view 1")
}
