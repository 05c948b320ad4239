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

// sotwMachine drives a SotW state machine in memory: each request is applied
// and answered at once, as the handler does, with no network and no clock.
type sotwMachine struct {
	t  *testing.T
	st *store.Store
	sm *machine.SotW
}

func newSotWMachine(t *testing.T, st *store.Store) *sotwMachine {
	return &sotwMachine{t: t, st: st, sm: machine.NewSotW(machine.Config{Scope: scope, Node: edgeNode()})}
}

// send applies req and returns what the machine answers.
func (m *sotwMachine) send(req *discoveryv3.DiscoveryRequest) []*machine.Response {
	m.t.Helper()
	_, err := m.sm.Receive(req, time.Time{}, m.st.View())
	require.NoError(m.t, err)
	return m.sm.Responses(m.st.View())
}

// ack accepts r, naming names.
func (m *sotwMachine) ack(r *machine.Response, names ...string) []*machine.Response {
	return m.send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeURL, VersionInfo: r.Version, ResponseNonce: r.Nonce, ResourceNames: names})
}

func only(t *testing.T, resps []*machine.Response, typeURL string, names ...string) *machine.Response {
	t.Helper()
	require.Len(t, resps, 1, "one response")
	r := resps[0]
	require.Equal(t, typeURL, r.TypeURL)
	var got []string
	for _, e := range r.Resources {
		got = append(got, e.Name)
	}
	require.Equal(t, names, got)
	return r
}

// S6: grpc-go moves its API listener from RDS route "r" to an inline route
// config (unsubscribing RDS) and back; the stream breaks as the request for
// [r] arrives. On the new stream it asks for [r] with the version it accepted
// before it dropped r: that version proves nothing, so r is sent.
func TestS6ResumeAfterUnsubscribeSendsAgain(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set(scope, xdstest.SimpleRoute("r", "a")))
	require.NoError(t, err)
	m := newSotWMachine(t, st)
	r := only(t, m.send(&discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: rds, ResourceNames: []string{"r"}}), rds, "r")
	require.Empty(t, m.ack(r, "r"))
	// The listener now carries its routes inline: RDS is unsubscribed (S4).
	require.Empty(t, m.send(&discoveryv3.DiscoveryRequest{TypeUrl: rds, VersionInfo: r.Version, ResponseNonce: r.Nonce}))

	again := newSotWMachine(t, st) // the new stream
	got := again.send(&discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: rds, VersionInfo: r.Version, ResourceNames: []string{"r"}})
	assert.Equal(t, r.Version, only(t, got, rds, "r").Version, "S6: the same content, sent again")
}

// S6, R16: the stream breaks after the client applied an updated cluster but
// before the endpoints owed to it (R16) arrived. The new stream's EDS request
// names the old EDS version, which is current; the endpoints are sent all the
// same, or the updated cluster stays warming.
func TestS6ResumeAnswersOwedEndpoints(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")))
	require.NoError(t, err)
	m := newSotWMachine(t, st)
	c := only(t, m.send(&discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: cds}), cds, "a")
	e := only(t, m.send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a"}}), eds, "a")
	require.Empty(t, m.ack(c))
	require.Empty(t, m.ack(e, "a"))
	_, err = st.Commit(store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(5*time.Second))))
	require.NoError(t, err)
	resps := m.sm.Responses(st.View())
	require.Len(t, resps, 2, "CDS, then the endpoints owed to the updated cluster (R16)")
	c2 := only(t, resps[:1], cds, "a")
	// The client applies c2; the stream breaks before the owed EDS answer arrives.

	again := newSotWMachine(t, st)
	assert.Empty(t, again.send(&discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: cds, VersionInfo: c2.Version}),
		"S3, S6: a wildcard CDS at the current version holds exactly the current clusters")
	got := again.send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, VersionInfo: e.Version, ResourceNames: []string{"a"}})
	assert.Equal(t, e.Version, only(t, got, eds, "a").Version, "S6, R16: the endpoints of the updated cluster")
}

// S3, S6: an explicit-name full-state subscription (gRPC's LDS) is answered on a
// new stream even at its current version: the client may have dropped the name.
func TestS6ResumeExplicitListener(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set(scope, xdstest.APIListener("l", "r")))
	require.NoError(t, err)
	m := newSotWMachine(t, st)
	l := only(t, m.send(&discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: lds, ResourceNames: []string{"l"}}), lds, "l")
	require.Empty(t, m.ack(l, "l"))

	again := newSotWMachine(t, st)
	got := again.send(&discoveryv3.DiscoveryRequest{Node: edgeNode(), TypeUrl: lds, VersionInfo: l.Version, ResourceNames: []string{"l"}})
	assert.Equal(t, l.Version, only(t, got, lds, "l").Version)
}
