package conformance_test

import (
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// R1, R3: two types on one ADS stream. Every response has a nonce of its own, and
// a change of endpoints moves the EDS version only.
func sotwNoncesAndVersions(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), setEndpoints("a", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	clusters := c.ExpectResponse(conv.TypeURL(cds), conv.Names("a", "b"))
	c.ACK()
	c.Request(eds, "a")
	ends := c.ExpectResponse(conv.TypeURL(eds), conv.Names("a"))
	c.ACK()
	if clusters.Nonce() == "" || clusters.Nonce() == ends.Nonce() {
		t.Errorf("R1: nonces %q and %q: want two distinct, non-empty nonces", clusters.Nonce(), ends.Nonce())
	}

	s.commit(t, setEndpoints("a", "10.0.0.2:80"))
	moved := c.ExpectResponse(conv.TypeURL(eds), conv.VersionNot(ends.Version()))
	c.ACK()
	c.ExpectNothing() // R3: CDS did not change, so it has nothing to say
	st := s.status(t, "envoy-1", func(st stream.StreamStatus) bool {
		return typeStatus(st, eds).VersionACKed == moved.Version()
	})
	if got := typeStatus(st, cds).VersionACKed; got != clusters.Version() {
		t.Errorf("R3: CDS version moved to %q with an EDS change, want %q", got, clusters.Version())
	}
	expectEqual(t, "R3: CDS nonce sent", typeStatus(st, cds).NonceSent, clusters.Nonce())
}

// R2: a first request without a Node ends the stream; with the Node on the first
// request only, the stream is served.
func sotwNodeOnFirstRequest(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"))
	anonymous := s.ads(t, nil)
	anonymous.Send(&discoveryv3.DiscoveryRequest{TypeUrl: cds})
	mustContain(t, anonymous.ExpectError(codes.InvalidArgument), "node")

	c := s.ads(t, edgeNode("envoy-1")) // the Node goes on the first request only
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a") // no Node
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("a"))
}

// R4, R5, R6, P1: the client rejects an update with an error_detail of code 0
// (P1: its presence is what counts). The server records the NACK with the version
// the client still holds, and sends nothing more until the next change.
func sotwNACK(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	good := c.ExpectResponse(conv.Names("a"))
	c.ACK()
	s.status(t, "envoy-1", func(st stream.StreamStatus) bool { return typeStatus(st, cds).VersionACKed == good.Version() })

	s.commit(t, setCluster("a", longerTimeout()))
	bad := c.ExpectResponse(conv.VersionNot(good.Version()))
	c.Send(&discoveryv3.DiscoveryRequest{
		TypeUrl: cds, VersionInfo: good.Version(), ResponseNonce: bad.Nonce(),
		ErrorDetail: &statuspb.Status{Code: 0, Message: "cluster a: connect_timeout rejected"},
	})
	c.ExpectNothing() // R6: no resend of what was rejected

	st := s.status(t, "envoy-1", func(st stream.StreamStatus) bool { return typeStatus(st, cds).LastNACK != nil })
	nack := typeStatus(st, cds).LastNACK
	expectEqual(t, "R4: NACK message", nack.Message, "cluster a: connect_timeout rejected")
	expectEqual(t, "R5: version still held", nack.Version, good.Version())
	expectEqual(t, "R4: rejected version", nack.RejectedVersion, bad.Version())
	expectEqual(t, "R4: NACKed nonce", nack.Nonce, bad.Nonce())
	expectEqual(t, "R5: version ACKed", typeStatus(st, cds).VersionACKed, good.Version())

	s.commit(t, setCluster("b")) // R6: the next send is the next change
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
}

// R7: a request answering an older response than the newest of its type gets no
// response, though a late ACK of that older response tells what the client
// accepted; the same request with the newest nonce is answered.
func sotwStaleNonce(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(eds, "a")
	first := c.ExpectResponse(conv.Names("a"))
	s.commit(t, setEndpoints("a", "10.0.0.2:80"))
	second := c.ExpectResponse(conv.Names("a"))

	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a", "b"},
		VersionInfo: first.Version(), ResponseNonce: first.Nonce()})
	c.ExpectNothing()
	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a"},
		VersionInfo: first.Version(), ResponseNonce: first.Nonce()}) // a late ACK of the first
	c.ExpectNothing()
	st := s.status(t, "envoy-1", func(st stream.StreamStatus) bool { return typeStatus(st, eds).VersionACKed == first.Version() })
	expectEqual(t, "R7: version sent", typeStatus(st, eds).VersionSent, second.Version())
	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a", "b"},
		VersionInfo: second.Version(), ResponseNonce: second.Nonce()})
	c.ExpectResponse(conv.Names("b"))
}

// R8: a client asking for a and b of a, b and c gets a and b; of a commit
// changing b and c it gets b (and, S2, only b), and a later change of c alone is
// not its business.
func sotwOnlyRequested(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"), setEndpoints("c", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	s.commit(t, setEndpoints("b", "10.0.0.9:80"), setEndpoints("c", "10.0.0.9:80"))
	c.ExpectResponse(conv.Names("b"))
	c.ACK()
	s.commit(t, setEndpoints("c", "10.0.0.7:80"))
	c.ExpectNothing()
}

// R9: a name added back to the subscription is sent again, though unchanged.
func sotwSubscriptionGrows(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(eds, "a")
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("b"))
	c.ACK()
	c.Request(eds, "b")
	c.ExpectNothing()
	c.Request(eds, "a", "b") // a is back: the client may have dropped it
	c.ExpectResponse(conv.Names("a"))
}

// R10: "*" beside an explicit name subscribes to everything, new resources too.
func sotwWildcardBesideNames(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds, "*", "a")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	s.commit(t, setCluster("c"))
	c.ExpectResponse(conv.Names("a", "b", "c"))
}

// R11: the first LDS request names nothing: a wildcard. Once it names l1, an
// empty list means no listener at all.
func sotwLegacyWildcard(t *testing.T, s server) {
	s.commit(t, setListener("l1", 8080, "r"), setListener("l2", 8081, "r"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(lds)
	c.ExpectResponse(conv.Names("l1", "l2"))
	c.ACK()
	c.Request(lds, "l1")
	c.ExpectResponse(conv.Names("l1"))
	c.ACK()
	c.Request(lds)
	c.ExpectNothing()
	s.commit(t, setListener("l3", 8082, "r"))
	c.ExpectNothing()
	s.commit(t, setListener("l1", 9090, "r"))
	c.ExpectNothing()
	st := s.status(t, "envoy-1", nil)
	expectEqual(t, "R11: wildcard", typeStatus(st, lds).Wildcard, false)
	expectEqual(t, "R11: names", join(typeStatus(st, lds).Names), join(nil))
}

// R12: LDS and CDS asked for by name, as gRPC asks, get exactly those names, now
// and after a change that adds others.
func sotwExplicitLDSCDS(t *testing.T, s server) {
	s.commit(t, setListener("l1", 8080, "r"), setListener("l2", 8081, "r"), setCluster("a"), setCluster("b"))
	c := s.ads(t, edgeNode("grpc-1"))
	c.Request(lds, "l1")
	c.ExpectResponse(conv.Names("l1"))
	c.ACK()
	c.Request(cds, "a")
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	s.commit(t, setCluster("c"), setListener("l3", 8082, "r"))
	c.ExpectNothing()
}

// R13: a name given twice, and a name also covered by "*", appear once.
func sotwNoDuplicates(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds, "a", "a", "*")
	c.ExpectResponse(conv.NamesInOrder("a", "b")) // conv also fails any response naming a resource twice
}

// R14: a name that does not exist is remembered, and sent once it is created.
func sotwMissingThenCreated(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(eds, "a", "later")
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	st := s.status(t, "envoy-1", nil)
	expectEqual(t, "R14: missing names", join(typeStatus(st, eds).Missing), "[later]")
	s.commit(t, setEndpoints("later", "10.0.0.5:80"))
	c.ExpectResponse(conv.Names("later"))
}

// R15: one commit changing a route, a listener, endpoints and a new cluster is
// pushed CDS, EDS, LDS, and RDS once the new cluster's endpoints were asked for;
// the secret it commits again unchanged is not pushed at all (R6).
func sotwPushOrder(t *testing.T, s server) {
	secret := store.Set(scope, xdstest.Secret("s"))
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setListener("l", 8080, "r"), setRoute("r", "a"), secret)
	c := s.ads(t, edgeNode("envoy-1"))
	subscribeAll(c)

	s.commit(t, setRoute("r", "a", "b"), setListener("l", 9090, "r"), setEndpoints("a", "10.0.0.2:80"), setCluster("b"), secret)
	var got []string
	for range 3 {
		got = append(got, protocol.Short(c.ExpectResponse().GetTypeUrl()))
	}
	// The route to the new cluster b waits while b warms: like Envoy, the client
	// asks for b's endpoints after the CDS update, and the route follows them.
	c.ExpectNothing()
	// Envoy asks for b's endpoints before it ACKs the clusters: an ACK of the
	// clusters alone would release the route (R19).
	c.Request(eds, "a", "b")
	for range 2 {
		got = append(got, protocol.Short(c.ExpectResponse().GetTypeUrl()))
	}
	expectEqual(t, "R15: push order", join(got), "[CDS EDS LDS EDS RDS]")
	c.ACK(cds)
	c.ExpectNothing()
}

// subscribeAll subscribes c to every listener and cluster, route r, the
// endpoints of a and secret s, ACKing each answer, in the order Envoy asks.
func subscribeAll(c *conv.SotW) {
	c.Request(cds)
	c.ExpectResponse(conv.TypeURL(cds))
	c.ACK()
	c.Request(eds, "a")
	c.ExpectResponse(conv.TypeURL(eds))
	c.ACK()
	c.Request(lds)
	c.ExpectResponse(conv.TypeURL(lds))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.TypeURL(rds))
	c.ACK()
	c.Request(protocol.TypeSecret, "s")
	c.ExpectResponse(conv.TypeURL(protocol.TypeSecret))
	c.ACK()
}

// R15: route r moves from cluster a to cluster b, and a and its endpoints are
// deleted, in one commit (as a config directory reload commits it). The client
// subscribes as Envoy does (every cluster, endpoints by name). It gets the route
// first and loses a only after it ACKed the route that no longer uses it; a's
// endpoints are not emptied meanwhile.
func sotwMakeBeforeBreak(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setCluster("b"), setEndpoints("b", "10.0.0.2:80"), setRoute("r", "a"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()

	s.commit(t, setRoute("r", "b"), drop(cds, "a"), drop(eds, "a"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ExpectNothing() // a and its endpoints stay until the new route is ACKed
	c.ACK()
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("b"))
	c.ACK()
	c.Request(eds, "b") // the client drops what it no longer has a cluster for
	c.ExpectNothing()
}

// R15, R16: route r moves to a new cluster c. The client subscribes as Envoy does:
// it learns c from CDS, then asks for c's endpoints. The route that uses c must
// come after c's endpoints, or Envoy routes to a cluster still warming and
// answers 503 meanwhile.
func sotwNewClusterBeforeRoute(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setRoute("r", "a"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a")
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()

	s.commit(t, setCluster("c"), setEndpoints("c", "10.0.0.3:80"), setRoute("r", "c"))
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("a", "c"))
	c.ExpectNothing() // c warms: the route waits
	// Envoy subscribes c's endpoints before it ACKs the clusters (R19).
	c.Request(eds, "a", "c")
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("c")) // before the route that uses c
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ACK(cds)
	c.ACK(eds)
	c.ACK(rds)
	c.ExpectNothing()
}

// R16: a cluster updated without an endpoint change gets its endpoints again, and
// a listener updated without a route change gets its route again, at the same
// versions, so that neither stays warming.
func sotwWarmingAnswered(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setListener("l", 8080, "r"), setRoute("r", "a"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a")
	ends := c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(lds)
	c.ExpectResponse(conv.Names("l"))
	c.ACK()
	c.Request(rds, "r")
	routes := c.ExpectResponse(conv.Names("r"))
	c.ACK()

	s.commit(t, setCluster("a", longerTimeout()))
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("a"))
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("a"), conv.Version(ends.Version()))
	c.ACK(cds)
	c.ACK(eds)
	s.commit(t, setListener("l", 9090, "r"))
	c.ExpectResponse(conv.TypeURL(lds), conv.Names("l"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"), conv.Version(routes.Version()))
}

// S1: every CDS response is the whole set; a deleted cluster is simply left out,
// and deleting the last one sends an empty response.
func sotwFullState(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	s.commit(t, setCluster("b", longerTimeout()))
	c.ExpectResponse(conv.Names("a", "b")) // a unchanged, sent all the same
	c.ACK()
	s.commit(t, drop(cds, "a"))
	c.ExpectResponse(conv.Names("b"))
	c.ACK()
	s.commit(t, drop(cds, "b"))
	c.ExpectResponse(conv.Empty())
}

// S2: of two subscribed assignments, only the changed one is sent; the other is
// not deleted by its absence.
func sotwPartialUpdate(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	s.commit(t, setEndpoints("b", "10.0.0.2:80"))
	c.ExpectResponse(conv.Names("b"))
}

// S3, S6, P3: after a server restart over the same content, a client presenting
// the version of its wildcard CDS gets nothing for it, its named EDS again at the
// same version; one presenting a version this server never made
// gets everything it asks for.
func sotwReconnect(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), setEndpoints("a", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	cv := c.ExpectResponse(conv.Names("a", "b")).Version()
	c.ACK()
	c.Request(eds, "a")
	ev := c.ExpectResponse(conv.Names("a")).Version()
	c.ACK()

	s.stop()
	c.ExpectError(codes.Unavailable)
	s.start(t)
	again := s.ads(t, edgeNode("envoy-1"))
	again.Send(&discoveryv3.DiscoveryRequest{Node: edgeNode("envoy-1"), TypeUrl: cds, VersionInfo: cv})
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a"}, VersionInfo: ev})
	again.ExpectResponse(conv.TypeURL(eds), conv.Names("a"), conv.Version(ev)) // S6: named, so answered
	again.ACK()
	again.ExpectNothing() // S3: the wildcard CDS is current
	st := s.status(t, "envoy-1", nil)
	expectEqual(t, "S3: CDS version held", typeStatus(st, cds).VersionACKed, cv)

	stranger := s.ads(t, edgeNode("envoy-2"))
	stranger.Send(&discoveryv3.DiscoveryRequest{Node: edgeNode("envoy-2"), TypeUrl: eds,
		ResourceNames: []string{"a"}, VersionInfo: "from-another-server"})
	stranger.ExpectResponse(conv.Names("a"), conv.Version(ev)) // P3
}

// S4: dropping a from the subscription needs no answer, and a's later changes
// are no longer sent; b's still are. Dropping a name beside "*" keeps the
// wildcard: only dropping "*" itself ends it.
func sotwUnsubscribe(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"), setCluster("x"), setCluster("y"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(eds, "a", "b")
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	c.Request(eds, "b")
	c.ExpectNothing()
	s.commit(t, setEndpoints("a", "10.0.0.3:80"))
	c.ExpectNothing()
	s.commit(t, setEndpoints("b", "10.0.0.3:80"))
	c.ExpectResponse(conv.Names("b"))
	c.ACK()

	c.Request(cds, "*", "x")
	c.ExpectResponse(conv.Names("x", "y"))
	c.ACK()
	c.Request(cds, "*")
	c.ExpectNothing() // x is still covered by the wildcard
	s.commit(t, setCluster("z"))
	c.ExpectResponse(conv.Names("x", "y", "z"))
}

// S5: two requests of a type waiting together are answered once, for the newer.
// In memory only: on the wire the server may answer the first before the second
// arrives.
func sotwNewestRequestWins(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(eds, "a")
	c.Request(eds, "b") // before the server has answered the first
	c.ExpectResponse(conv.Names("b"))
	c.ExpectNothing() // R6: nothing more to send
}

// P2: a cluster without endpoints gets an explicit empty assignment, and gets it
// back when its endpoints are deleted.
func sotwEmptyAssignment(t *testing.T, s server) {
	s.commit(t, setCluster("lonely"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("lonely"))
	c.ACK()
	c.Request(eds, "lonely")
	expectEmptyAssignment(t, c.ExpectResponse(conv.Names("lonely")).Resource("lonely"))
	c.ACK()
	s.commit(t, setEndpoints("lonely", "10.0.0.1:80"))
	filled, _ := c.ExpectResponse(conv.Names("lonely")).Resource("lonely").(*endpointv3.ClusterLoadAssignment)
	expectEqual(t, "P2: localities once endpoints exist", len(filled.GetEndpoints()), 1)
	c.ACK()
	s.commit(t, drop(eds, "lonely"))
	expectEmptyAssignment(t, c.ExpectResponse(conv.Names("lonely")).Resource("lonely"))
}

func expectEmptyAssignment(t *testing.T, m any) {
	t.Helper()
	cla, ok := m.(*endpointv3.ClusterLoadAssignment)
	if !ok || cla.GetClusterName() == "" || len(cla.GetEndpoints()) != 0 {
		t.Errorf("P2: want an explicit empty ClusterLoadAssignment, got %v", m)
	}
}
