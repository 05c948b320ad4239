package stream_test

import (
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

const (
	cds = protocol.TypeCluster
	eds = protocol.TypeEndpoint
	lds = protocol.TypeListener
	rds = protocol.TypeRoute
)

func clusters(names ...string) []store.Change {
	var out []store.Change
	for _, n := range names {
		out = append(out, store.Set(scope, xdstest.Cluster(n)))
	}
	return out
}

// R1, R3: every response has its own nonce, and each type keeps its own version
// sequence on one ADS stream.
func TestR1R3NoncesAndPerTypeVersions(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("a", "b"), store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")))...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	r1 := c.ExpectResponse(conv.TypeURL(cds), conv.Names("a", "b"))
	c.ACK()
	c.Request(eds, "a")
	r2 := c.ExpectResponse(conv.TypeURL(eds), conv.Names("a"))
	c.ACK()
	assert.NotEqual(t, r1.Nonce(), r2.Nonce())

	// A change of endpoints moves the EDS version only.
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.2:80")))
	r3 := c.ExpectResponse(conv.TypeURL(eds), conv.VersionNot(r2.Version()))
	c.ACK()
	c.ExpectNothing()
	s := e.status(t, "envoy-1", func(s stream.StreamStatus) bool { return typeStatus(s, eds).VersionACKed == r3.Version() })
	assert.Equal(t, r1.Version(), typeStatus(s, cds).VersionACKed)
	assert.Equal(t, r1.Nonce(), typeStatus(s, cds).NonceSent)
}

// R2: only the first request must carry the node; a first request without one
// ends the stream with InvalidArgument.
func TestR2NodeOnFirstRequestOnly(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	bad := conv.ADS(t, e.cc, nil)
	bad.Send(&discoveryv3.DiscoveryRequest{TypeUrl: cds})
	err := bad.ExpectError(codes.InvalidArgument)
	assert.Contains(t, err.Error(), "node")

	c := conv.ADS(t, e.cc, edge) // conv sends the node on the first request only
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a") // no node: fine after the first request
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("a"))
}

// R4, R5, R6, P1: error_detail makes a NACK whatever its code; the NACK records the
// version the client still holds; nothing is re-sent until the next change.
func TestR4R5R6P1NACK(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	good := c.ExpectResponse(conv.Names("a"))
	c.ACK()
	e.status(t, "envoy-1", func(s stream.StreamStatus) bool { return typeStatus(s, cds).VersionACKed == good.Version() })

	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(7*time.Second))))
	bad := c.ExpectResponse(conv.VersionNot(good.Version()))
	// P1: a NACK with code 0 (as some clients send) is still a NACK.
	c.Send(&discoveryv3.DiscoveryRequest{
		TypeUrl: cds, VersionInfo: good.Version(), ResponseNonce: bad.Nonce(),
		ErrorDetail: &statuspb.Status{Code: 0, Message: "cluster a: bad timeout"},
	})
	c.ExpectNothing() // R6: no NACK loop

	s := e.status(t, "envoy-1", func(s stream.StreamStatus) bool { return typeStatus(s, cds).LastNACK != nil })
	n := typeStatus(s, cds).LastNACK
	assert.Equal(t, "cluster a: bad timeout", n.Message)
	assert.Equal(t, good.Version(), n.Version, "R5: the NACK carries the version still held")
	assert.Equal(t, bad.Version(), n.RejectedVersion)
	assert.Equal(t, bad.Nonce(), n.Nonce)
	assert.Equal(t, good.Version(), typeStatus(s, cds).VersionACKed)

	// R6: the next send is the next change.
	e.commit(t, clusters("b")...)
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
}

// R7: a request with a stale nonce gets no response.
func TestR7StaleNonce(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")), store.Set(scope, xdstest.Endpoints("b", "10.0.0.1:80")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(eds, "a")
	first := c.ExpectResponse(conv.Names("a"))
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.2:80")))
	second := c.ExpectResponse(conv.Names("a"))
	// The client, not having seen the second response, asks for b under the
	// first nonce: the server waits for the answer to its newest response.
	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a", "b"}, ResponseNonce: first.Nonce(), VersionInfo: first.Version()})
	c.ExpectNothing()
	// The late ACK of the first response is stale, yet tells what the client accepted.
	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a"}, ResponseNonce: first.Nonce(), VersionInfo: first.Version()})
	c.ExpectNothing()
	st := e.status(t, "envoy-1", nil)
	assert.Equal(t, first.Version(), typeStatus(st, eds).VersionACKed)
	assert.Equal(t, second.Version(), typeStatus(st, eds).VersionSent)
	// The same request under the newest nonce is answered (R9: b is new).
	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a", "b"}, ResponseNonce: second.Nonce(), VersionInfo: second.Version()})
	c.ExpectResponse(conv.Names("b"))
}

// R8, S2: an explicit EDS subscription gets only what it names, and only what
// changed.
func TestR8S2OnlyRequestedAndChanged(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")), store.Set(scope, xdstest.Endpoints("b", "10.0.0.1:80")),
		store.Set(scope, xdstest.Endpoints("c", "10.0.0.1:80")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Endpoints("b", "10.0.0.9:80")), store.Set(scope, xdstest.Endpoints("c", "10.0.0.9:80")))
	c.ExpectResponse(conv.Names("b")) // S2: a unchanged, c not asked for (R8)
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Endpoints("c", "10.0.0.7:80")))
	c.ExpectNothing()
}

// R9: a growing subscription gets the newly named resources, even ones the client
// had before.
func TestR9NewNamesAreSent(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")), store.Set(scope, xdstest.Endpoints("b", "10.0.0.1:80")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(eds, "a")
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("b"))
	c.ACK()
	c.Request(eds, "b") // drop a (S4: nothing to send)
	c.ExpectNothing()
	c.Request(eds, "a", "b") // a again: sent although unchanged
	c.ExpectResponse(conv.Names("a"))
}

// R10, R12, S1: "*" beside explicit names subscribes to everything; CDS named
// explicitly (as gRPC does) gets only the named clusters, all of them each time.
func TestR10R12S1WildcardAndExplicitFullState(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a", "b", "c")...)
	explicit := conv.ADS(t, e.cc, node("grpc-1", scope))
	explicit.Request(cds, "a", "b")
	explicit.ExpectResponse(conv.Names("a", "b"))
	explicit.ACK()
	wild := conv.ADS(t, e.cc, node("envoy-2", scope))
	wild.Request(cds, "*", "a")
	wild.ExpectResponse(conv.Names("a", "b", "c"))
	wild.ACK()

	e.commit(t, store.Set(scope, xdstest.Cluster("b", xdstest.WithConnectTimeout(3*time.Second))), store.Set(scope, xdstest.Cluster("d")))
	explicit.ExpectResponse(conv.Names("a", "b")) // S1: full state of what it names; d not named (R12)
	wild.ExpectResponse(conv.Names("a", "b", "c", "d"))
	explicit.ACK()
	wild.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster("c", xdstest.WithConnectTimeout(3*time.Second))))
	explicit.ExpectNothing() // c is not its business
	// S1: deleting c sends the full state without it.
	wild.ExpectResponse(conv.Names("a", "b", "c", "d"))
	wild.ACK()
	e.commit(t, store.Delete(scope, cds, "c"))
	wild.ExpectResponse(conv.Names("a", "b", "d"))
}

// R11: a first request naming nothing is a wildcard; after names, an empty list
// unsubscribes from everything.
func TestR11LegacyWildcard(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Listener("l1", 8080, "r")), store.Set(scope, xdstest.Listener("l2", 8081, "r")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(lds)
	c.ExpectResponse(conv.Names("l1", "l2"))
	c.ACK()
	c.Request(lds, "l1")
	c.ExpectResponse(conv.Names("l1")) // S1: the full state of the narrower subscription
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Listener("l3", 8082, "r")))
	c.ExpectNothing() // no longer wildcard: l3 is not its business
	c.Request(lds)    // after a name, empty means none
	c.ExpectNothing()
	e.commit(t, store.Set(scope, xdstest.Listener("l1", 9090, "r")))
	c.ExpectNothing()
	s := e.status(t, "envoy-1", nil)
	assert.False(t, typeStatus(s, lds).Wildcard)
	assert.Empty(t, typeStatus(s, lds).Names)
}

// R14: a requested resource that does not exist is sent when it appears.
func TestR14MissingThenCreated(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(eds, "a", "later")
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	s := e.status(t, "envoy-1", nil)
	assert.Equal(t, []string{"later"}, typeStatus(s, eds).Missing)
	e.commit(t, store.Set(scope, xdstest.Endpoints("later", "10.0.0.5:80")))
	c.ExpectResponse(conv.Names("later"))
}

// R15: one commit touching several types is pushed CDS, EDS, LDS, RDS; a route
// to a new cluster waits until the cluster has its endpoints.
func TestR15PushOrder(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")),
		store.Set(scope, xdstest.Listener("l", 8080, "r")), store.Set(scope, xdstest.SimpleRoute("r", "a")),
		store.Set(scope, xdstest.Secret("s")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(lds)
	c.ExpectResponse(conv.TypeURL(lds))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.TypeURL(rds))
	c.ACK()
	c.Request(cds)
	c.ExpectResponse(conv.TypeURL(cds))
	c.ACK()
	c.Request(eds, "a")
	c.ExpectResponse(conv.TypeURL(eds))
	c.ACK()
	c.Request(protocol.TypeSecret, "s")
	c.ExpectResponse(conv.TypeURL(protocol.TypeSecret))
	c.ACK()

	e.commit(t,
		store.Set(scope, xdstest.SimpleRoute("r", "a", "b")),
		store.Set(scope, xdstest.Listener("l", 9090, "r")),
		store.Set(scope, xdstest.Endpoints("a", "10.0.0.2:80")),
		store.Set(scope, xdstest.Cluster("b")),
		store.Set(scope, xdstest.Secret("s")),
	)
	var got []string
	for range 3 {
		r := c.ExpectResponse()
		got = append(got, protocol.Short(r.GetTypeUrl()))
	}
	assert.Equal(t, []string{"CDS", "EDS", "LDS"}, got)
	// The route to new cluster b waits while b warms: the client has b but has not
	// asked for its endpoints yet (make before break). It asks, as Envoy does
	// before it ACKs a CDS update (R19): b's (explicitly empty, P2) endpoints,
	// then the route.
	c.ExpectNothing()
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("b"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ACK(cds)
	c.ExpectNothing()
}

// R15: make before break: a cluster the client's routes still use stays in CDS
// until the route update that stops using it has been sent and ACKed.
func TestR15MakeBeforeBreak(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("a", "b"), store.Set(scope, xdstest.SimpleRoute("r", "a")))...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()

	// Route r moves from a to new cluster c and a is deleted, in one commit.
	e.commit(t, store.Set(scope, xdstest.SimpleRoute("r", "c")), store.Set(scope, xdstest.Cluster("c")), store.Delete(scope, cds, "a"))
	// CDS is pushed first, with c, and a is kept: r still routes to it on the client.
	first := c.ExpectResponse(conv.TypeURL(cds), conv.Names("a", "b", "c"))
	// The route waits until c has its endpoints (it warms); Envoy asks for them
	// before it ACKs the clusters (R19).
	c.ExpectNothing()
	c.Request(eds, "a", "b", "c")
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("c"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ACK(cds)
	c.ACK(eds)
	c.ExpectNothing() // not before the route update is ACKed
	c.ACK(rds)
	// Now nothing uses a: it goes.
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("b", "c"), conv.VersionNot(first.Version()))
	c.ACK()
	c.ExpectNothing()

	// Within one commit where nothing new is added, CDS has nothing to say until
	// the route stops using the deleted cluster.
	e.commit(t, store.Set(scope, xdstest.SimpleRoute("r", "b")), store.Delete(scope, cds, "c"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ACK()
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("b"))
}

// R16: an updated cluster's endpoints are answered even though they did not
// change, and so are a new listener's routes, so they leave warming.
func TestR16WarmingAnswered(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")),
		store.Set(scope, xdstest.Listener("l", 8080, "r")), store.Set(scope, xdstest.SimpleRoute("r", "a")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a")
	eds1 := c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(lds)
	c.ExpectResponse(conv.Names("l"))
	c.ACK()
	c.Request(rds, "r")
	rds1 := c.ExpectResponse(conv.Names("r"))
	c.ACK()

	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(4*time.Second))))
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("a"))
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("a"), conv.Version(eds1.Version()))
	c.ACK(cds)
	c.ACK(eds)

	e.commit(t, store.Set(scope, xdstest.Listener("l", 9090, "r")))
	c.ExpectResponse(conv.TypeURL(lds), conv.Names("l"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"), conv.Version(rds1.Version()))
}

// S3: a client reconnecting with the version it holds gets nothing when that is
// current, across a server restart too, for a wildcard full-state type; S6: a
// subscription by name is answered again, at the same version; P3: with a
// version this server would not send, it gets everything.
func TestS3P3Reconnect(t *testing.T) {
	st := store.New()
	e := newEnvWith(t, st)
	e.commit(t, append(clusters("a", "b"), store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")))...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	cv := c.ExpectResponse(conv.Names("a", "b")).Version()
	c.ACK()
	c.Request(eds, "a")
	ev := c.ExpectResponse(conv.Names("a")).Version()
	c.ACK()

	// A new server process over the same content: new stream, same versions.
	restarted := newEnvWith(t, st)
	again := conv.ADS(t, restarted.cc, edge)
	again.Send(&discoveryv3.DiscoveryRequest{Node: edge, TypeUrl: cds, VersionInfo: cv})
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, VersionInfo: ev, ResourceNames: []string{"a"}})
	again.ExpectResponse(conv.TypeURL(eds), conv.Names("a"), conv.Version(ev)) // S6
	again.ACK()
	again.ExpectNothing() // S3: nothing for CDS
	s := restarted.status(t, "envoy-1", nil)
	assert.Equal(t, cv, typeStatus(s, cds).VersionACKed)

	// P3: a version this server never sent means unknown content.
	other := conv.ADS(t, restarted.cc, node("envoy-9", scope))
	other.Send(&discoveryv3.DiscoveryRequest{Node: node("envoy-9", scope), TypeUrl: eds, VersionInfo: "from-another-server", ResourceNames: []string{"a"}})
	other.ExpectResponse(conv.Names("a"), conv.Version(ev))
}

// S4: unsubscribing needs no answer and stops updates of what was dropped.
func TestS4Unsubscribe(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")), store.Set(scope, xdstest.Endpoints("b", "10.0.0.1:80")))
	c := conv.ADS(t, e.cc, edge)
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	c.Request(eds, "b")
	c.ExpectNothing()
	e.commit(t, store.Set(scope, xdstest.Endpoints("a", "10.0.0.3:80")))
	c.ExpectNothing()
	e.commit(t, store.Set(scope, xdstest.Endpoints("b", "10.0.0.3:80")))
	c.ExpectResponse(conv.Names("b"))
}

// S5: of several requests waiting, only the newest state is answered.
func TestS5NewestRequestWins(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")), store.Set(scope, xdstest.Endpoints("b", "10.0.0.1:80")))
	require.NoError(t, err)
	sm := stream.NewSotW(scope, edge, stream.Limits{})
	v := st.View()
	_, err = sm.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a"}}, time.Now(), v)
	require.NoError(t, err)
	_, err = sm.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"b"}}, time.Now(), v)
	require.NoError(t, err)
	resps := sm.Responses(v)
	require.Len(t, resps, 1)
	require.Len(t, resps[0].Resources, 1)
	assert.Equal(t, "b", resps[0].Resources[0].Name)
	assert.Empty(t, sm.Responses(v), "R6: nothing more to send")
}

// P2: a cluster with no endpoints gets an explicit empty assignment.
func TestP2EmptyAssignment(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("lonely")...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse(conv.Names("lonely"))
	c.ACK()
	c.Request(eds, "lonely")
	r := c.ExpectResponse(conv.Names("lonely"))
	cla, ok := r.Resource("lonely").(*endpointv3.ClusterLoadAssignment)
	require.True(t, ok)
	assert.Empty(t, cla.GetEndpoints())
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Endpoints("lonely", "10.0.0.1:80")))
	r = c.ExpectResponse(conv.Names("lonely"))
	assert.Len(t, r.Resource("lonely").(*endpointv3.ClusterLoadAssignment).GetEndpoints(), 1)
	// Deleted endpoints of a live cluster: back to the explicit empty assignment.
	c.ACK()
	e.commit(t, store.Delete(scope, eds, "lonely"))
	r = c.ExpectResponse(conv.Names("lonely"))
	assert.Empty(t, r.Resource("lonely").(*endpointv3.ClusterLoadAssignment).GetEndpoints())
}

// P4: grpc-go subscribes LDS → RDS → CDS → EDS by explicit name, one level at a
// time, with the node on the first request only.
func TestP4GRPCStyleSequence(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.APIListener("svc", "svc-route")), store.Set(scope, xdstest.SimpleRoute("svc-route", "svc-cluster")),
		store.Set(scope, xdstest.Cluster("svc-cluster")), store.Set(scope, xdstest.Endpoints("svc-cluster", "127.0.0.1:5000")))
	c := conv.ADS(t, e.cc, node("grpc-client", scope))
	c.Request(lds, "svc")
	c.ExpectResponse(conv.Names("svc"))
	c.ACK()
	c.Request(rds, "svc-route")
	c.ExpectResponse(conv.Names("svc-route"))
	c.ACK()
	c.Request(cds, "svc-cluster")
	c.ExpectResponse(conv.Names("svc-cluster"))
	c.ACK()
	c.Request(eds, "svc-cluster")
	c.ExpectResponse(conv.Names("svc-cluster"))
	c.ACK()
	c.ExpectNothing()
}

// An unknown type is answered as an empty set and does not end the stream.
func TestUnknownTypeAnsweredEmpty(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	const unknown = "type.googleapis.com/envoy.config.unknown.v3.Thing"
	c := conv.ADS(t, e.cc, edge)
	c.Request(unknown, "x")
	c.ExpectResponse(conv.TypeURL(unknown), conv.Empty())
	c.ACK()
	c.ExpectNothing()
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	s := e.status(t, "envoy-1", nil)
	assert.False(t, typeStatus(s, unknown).Served)
}

// Bad input ends only its own stream, with InvalidArgument and what was wrong.
func TestMalformedRequests(t *testing.T) {
	e := newEnv(t, func(o *stream.Options) { o.Limits.MaxNames = 3 })
	e.commit(t, clusters("a")...)
	good := conv.ADS(t, e.cc, node("good", scope))
	good.Request(cds)
	good.ExpectResponse(conv.Names("a"))
	good.ACK()

	many := conv.ADS(t, e.cc, node("many", scope))
	many.Request(eds, "1", "2", "3", "4")
	assert.Contains(t, many.ExpectError(codes.InvalidArgument).Error(), "more than the limit of 3")

	noType := conv.ADS(t, e.cc, node("notype", scope))
	noType.Send(&discoveryv3.DiscoveryRequest{Node: node("notype", scope)})
	assert.Contains(t, noType.ExpectError(codes.InvalidArgument).Error(), "type_url")

	wrong := conv.Typed(t, e.cc, cds, node("wrong", scope))
	wrong.Request(eds, "a")
	assert.Contains(t, wrong.ExpectError(codes.InvalidArgument).Error(), "cds service")

	e.commit(t, clusters("b")...)
	good.ExpectResponse(conv.Names("a", "b"))
}

// The per-type services serve one type each, with the same rules.
func TestPerTypeServices(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("a"), store.Set(scope, xdstest.Endpoints("a", "10.0.0.1:80")),
		store.Set(scope, xdstest.Listener("l", 8080, "r")), store.Set(scope, xdstest.SimpleRoute("r", "a")),
		store.Set(scope, xdstest.Secret("s")), store.Set(scope, xdstest.Runtime("rt", map[string]any{"k": "v"})),
		store.Set(scope, xdstest.ExtensionConfig("ext")))...)
	for typeURL, name := range map[string]string{
		cds: "a", eds: "a", lds: "l", rds: "r",
		protocol.TypeSecret: "s", protocol.TypeRuntime: "rt", protocol.TypeExtensionCfg: "ext",
	} {
		t.Run(protocol.Short(typeURL), func(t *testing.T) {
			c := conv.Typed(t, e.cc, typeURL, node("typed-"+name, scope))
			c.Request(typeURL, name)
			c.ExpectResponse(conv.TypeURL(typeURL), conv.Names(name))
			c.ACK()
			c.ExpectNothing()
		})
	}
}

// Fetch answers once with what the request names.
func TestFetch(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a", "b")...)
	resp := new(discoveryv3.DiscoveryResponse)
	err := e.cc.Invoke(t.Context(), "/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters",
		&discoveryv3.DiscoveryRequest{Node: edge, ResourceNames: []string{"b"}}, resp)
	require.NoError(t, err)
	require.Len(t, resp.GetResources(), 1)
	var c clusterv3.Cluster
	require.NoError(t, resp.GetResources()[0].UnmarshalTo(&c))
	assert.Equal(t, "b", c.GetName())
	assert.Equal(t, cds, resp.GetTypeUrl())
	assert.NotEmpty(t, resp.GetVersionInfo())
}

// Node → scope: by cluster by default, falling back to the default scope; by id,
// by metadata, and without fallback on demand.
func TestScopes(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster("edge-cluster")), store.Set(stream.DefaultScope, xdstest.Cluster("default-cluster")),
		store.Set("envoy-7", xdstest.Cluster("own-cluster")), store.Set("tenant-a", xdstest.Cluster("tenant-cluster")))
	conv.ADS(t, e.cc, node("n1", scope)).Request(cds).ExpectResponse(conv.Names("edge-cluster"))
	conv.ADS(t, e.cc, node("n2", "nobody")).Request(cds).ExpectResponse(conv.Names("default-cluster"))

	byID := newEnvWith(t, e.st, func(o *stream.Options) { o.ScopeOf = stream.ScopeByNodeID })
	conv.ADS(t, byID.cc, node("envoy-7", scope)).Request(cds).ExpectResponse(conv.Names("own-cluster"))

	byMeta := newEnvWith(t, e.st, func(o *stream.Options) { o.ScopeOf = stream.ScopeByMetadata("tenant") })
	n := node("n3", scope)
	n.Metadata = mustStruct(t, map[string]any{"tenant": "tenant-a"})
	conv.ADS(t, byMeta.cc, n).Request(cds).ExpectResponse(conv.Names("tenant-cluster"))

	strict := newEnvWith(t, e.st, func(o *stream.Options) { o.NoDefaultScope = true })
	conv.ADS(t, strict.cc, node("n4", "nobody")).Request(cds).ExpectResponse(conv.Empty())
	s := strict.status(t, "n4", nil)
	assert.Equal(t, "nobody", s.Scope)
}

func TestHooks(t *testing.T) {
	events := make(chan string, 100)
	e := newEnv(t, func(o *stream.Options) {
		o.Hooks = stream.Hooks{
			StreamOpened: func(i stream.StreamInfo) { events <- "open " + i.NodeID + " " + i.Scope },
			Request:      func(i stream.StreamInfo, r stream.Received) { events <- "request " + r.Kind.String() },
			Response: func(i stream.StreamInfo, r *stream.Response, _ time.Duration) {
				events <- fmt.Sprintf("response %s %d", protocol.Short(r.TypeURL), len(r.Resources))
			},
			ACK: func(i stream.StreamInfo, typeURL, v string, _ time.Duration) {
				events <- "ack " + protocol.Short(typeURL)
			},
			NACK:         func(i stream.StreamInfo, typeURL string, n stream.NACK) { events <- "nack " + n.Message },
			StreamClosed: func(i stream.StreamInfo, err error) { events <- "closed " + i.NodeID },
		}
	})
	e.commit(t, clusters("a")...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse()
	c.NACK("nope")
	c.ExpectNothing()
	c.Close()
	want := []string{"open envoy-1 edge", "request subscribe", "response CDS 1", "request nack", "nack nope", "closed envoy-1"}
	for _, w := range want {
		select {
		case got := <-events:
			assert.Equal(t, w, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %q", w)
		}
	}
}
