package machine_test

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

// deltaMachine drives a delta state machine in memory, like sotwMachine.
type deltaMachine struct {
	t  *testing.T
	st *store.Store
	d  *machine.Delta
}

func newDeltaMachine(t *testing.T, st *store.Store) *deltaMachine {
	return &deltaMachine{t: t, st: st, d: machine.NewDelta(machine.Config{Scope: scope, Node: edgeNode()})}
}

func (m *deltaMachine) send(req *discoveryv3.DeltaDiscoveryRequest) []*machine.Response {
	m.t.Helper()
	_, err := m.d.Receive(req, time.Time{}, m.st.View())
	require.NoError(m.t, err)
	return m.d.Responses(m.st.View())
}

func (m *deltaMachine) subscribe(typeURL string, names ...string) []*machine.Response {
	return m.send(&discoveryv3.DeltaDiscoveryRequest{Node: edgeNode(), TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

func (m *deltaMachine) ack(r *machine.Response) []*machine.Response {
	return m.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeURL, ResponseNonce: r.Nonce})
}

func commit(t *testing.T, st *store.Store, changes ...store.Change) {
	t.Helper()
	_, err := st.Commit(changes...)
	require.NoError(t, err)
}

// envoyAt subscribes an Envoy-like SotW client to every cluster, their
// endpoints and route r, each answered and ACKed.
func envoyAt(t *testing.T, st *store.Store, eps ...string) *sotwMachine {
	m := newSotWMachine(t, st)
	c := m.send(&discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: cds})
	require.Len(t, c, 1)
	require.Empty(t, m.ack(c[0]))
	e := m.send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: eps})
	require.Len(t, e, 1)
	require.Empty(t, m.ack(e[0], eps...))
	r := m.send(&discoveryv3.DiscoveryRequest{TypeUrl: rds, ResourceNames: []string{"r"}})
	require.Len(t, r, 1)
	require.Empty(t, m.ack(r[0], "r"))
	return m
}

func retained(t *testing.T, types []machine.TypeStatus, typeURL string) []string {
	t.Helper()
	for _, ts := range types {
		if ts.TypeURL == typeURL {
			var names []string
			for _, e := range ts.Retained {
				names = append(names, e.Name)
			}
			return names
		}
	}
	t.Fatalf("no %s in the status", typeURL)
	return nil
}

// R18: a config that deletes a cluster its routes still name is not a
// transition: the cluster goes at once, for clients that had it too.
func TestR18DanglingDeletionRemovesCluster(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("x")), store.Set(scope, xdstest.Cluster("y")),
		store.Set(scope, xdstest.SimpleRoute("r", "x", "y")))
	m := envoyAt(t, st, "x", "y")

	commit(t, st, store.Delete(scope, cds, "x")) // r still names x
	only(t, m.sm.Responses(st.View()), cds, "y")

	d := newDeltaMachine(t, st)
	commit(t, st, store.Set(scope, xdstest.Cluster("x")))
	c := d.subscribe(cds, "*")
	require.Len(t, c, 1)
	require.Empty(t, d.ack(c[0]))
	r := d.subscribe(rds, "r")
	require.Len(t, r, 1)
	require.Empty(t, d.ack(r[0]))
	commit(t, st, store.Delete(scope, cds, "x"))
	got := d.d.Responses(st.View())
	require.Len(t, got, 1)
	assert.Equal(t, cds, got[0].TypeURL)
	assert.Equal(t, []string{"x"}, got[0].Removed, "R18, D7: the deletion is announced")
}

// R15, R18: in a commit that deletes a cluster and updates some routes, the
// cluster is kept while the client may still hold routes of the revision before
// (make before break), and shown as kept in the status; once the client has
// answered the routes of the revision that deleted it, it goes, though r still
// names it.
func TestR18TransitionEndsWithRouteAnswer(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("x")), store.Set(scope, xdstest.Cluster("y")),
		store.Set(scope, xdstest.SimpleRoute("r", "x")))
	m := envoyAt(t, st, "x", "y")

	commit(t, st, store.Delete(scope, cds, "x"), store.Set(scope, xdstest.SimpleRoute("r", "x", "y")))
	got := m.sm.Responses(st.View())
	require.Len(t, got, 1, "the route; CDS has nothing new while x is kept")
	rr := only(t, got, rds, "r")
	assert.Equal(t, []string{"x"}, retained(t, m.sm.Status().Types(), cds), "the status shows x kept")

	c := only(t, m.ack(rr, "r"), cds, "y")
	require.Empty(t, m.ack(c))
	assert.Empty(t, retained(t, m.sm.Status().Types(), cds))
}

// R19: a route to a new cluster whose endpoints do not come over this stream
// (its eds_config is a path) waits at most until the client answers the
// clusters; later route-only changes are not held either.
func TestR19RouteNotHeldForEndpointsFromElsewhere(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")),
		store.Set(scope, xdstest.SimpleRoute("r", "a")))
	m := envoyAt(t, st, "a")

	b := xdstest.Cluster("b")
	b.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/etc/envoy/b.yaml"}}
	commit(t, st, store.Set(scope, b), store.Set(scope, xdstest.SimpleRoute("r", "a", "b")))
	c := only(t, m.sm.Responses(st.View()), cds, "a", "b") // R15: the route waits while b may warm
	// The client subscribes no endpoints for b (they come from a file) and ACKs.
	only(t, m.ack(c), rds, "r")

	rr := m.sm.Responses(st.View())
	assert.Empty(t, rr)
	commit(t, st, store.Set(scope, xdstest.SimpleRoute("r", "b")))
	only(t, m.sm.Responses(st.View()), rds, "r")
}
