package conformance_test

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// R1, R3, D1, D8: every delta response has a nonce of its own; each resource's
// version is its content hash, the one any other process computes for the same
// content; the ACK is the echoed nonce.
func deltaNoncesAndVersions(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	clusters := c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "a")
	ends := c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("a"))
	c.ACK()
	if clusters.GetNonce() == "" || clusters.GetNonce() == ends.GetNonce() {
		t.Errorf("R1, D1: nonces %q and %q: want two distinct, non-empty nonces", clusters.GetNonce(), ends.GetNonce())
	}
	elsewhere := store.New() // D8: another process, the same content
	if _, err := elsewhere.Commit(store.Set("other", xdstest.Cluster("a"))); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "D8: version of a", clusters.VersionOf("a"), elsewhere.View().Table("other", cds).Get("a").Version)

	s.commit(t, setEndpoints("a", "10.0.0.2:80"))
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("a"))
	c.ACK()
	c.ExpectNothing() // R3: CDS did not change
	st := s.status(t, "envoy-1", func(st stream.StreamStatus) bool { return typeStatus(st, cds).VersionACKed != "" })
	expectEqual(t, "D1: CDS ACKed by nonce", typeStatus(st, cds).VersionACKed, clusters.GetSystemVersionInfo())
	expectEqual(t, "variant", st.Variant, "delta")
}

// R2: the same over delta.
func deltaNodeOnFirstRequest(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"))
	anonymous := s.deltaADS(t, nil)
	anonymous.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds})
	mustContain(t, anonymous.ExpectError(codes.InvalidArgument), "node")

	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("a"))
}

// R4, R6, P1, D1: a NACK is the echoed nonce with an error_detail, here of code 14.
// The server records it and sends nothing more until the next change.
func deltaNACK(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	s.commit(t, setCluster("a", longerTimeout()))
	bad := c.ExpectResponse(conv.Updated("a"))
	c.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: bad.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: 14, Message: "cluster a: rejected"}})
	c.ExpectNothing()

	st := s.status(t, "envoy-1", func(st stream.StreamStatus) bool { return typeStatus(st, cds).LastNACK != nil })
	nack := typeStatus(st, cds).LastNACK
	expectEqual(t, "R4: NACK message", nack.Message, "cluster a: rejected")
	expectEqual(t, "R4: NACKed nonce", nack.Nonce, bad.GetNonce())
	expectEqual(t, "R4: rejected version", nack.RejectedVersion, bad.GetSystemVersionInfo())
	s.commit(t, setCluster("b"))
	c.ExpectResponse(conv.Updated("b"))
}

// D2: a subscription carrying an old nonce is honoured all the same.
func deltaStaleNonce(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(eds, "a")
	first := c.ExpectResponse(conv.Updated("a"))
	s.commit(t, setEndpoints("a", "10.0.0.2:80"))
	c.ExpectResponse(conv.Updated("a"))
	c.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: eds, ResponseNonce: first.GetNonce(), ResourceNamesSubscribe: []string{"b"}})
	c.ExpectResponse(conv.Updated("b"))
}

// R8: over delta, a subscription to a gets a, and nothing of b.
func deltaOnlyRequested(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.Updated("a"), conv.NoRemoved())
	c.ACK()
	s.commit(t, setEndpoints("b", "10.0.0.9:80"))
	c.ExpectNothing()
}

// R9, D5: subscribing again to a name the client holds is answered, even though
// the client seems current.
func deltaSubscribeAlwaysAnswered(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"), setEndpoints("b", "10.0.0.1:80"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(eds, "a")
	r := c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "b")
	c.ExpectResponse(conv.Updated("b"))
	c.ACK()
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.Updated("a"), conv.VersionOf("a", r.VersionOf("a")))
}

// R10, D4, D6: "*" beside an explicit name; unsubscribing that name while the
// wildcard covers it sends it again, and dropping "*" stops the updates.
func deltaWildcardBesideNames(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*", "a")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Unsubscribe(cds, "a")
	c.ExpectResponse(conv.Updated("a"), conv.NoRemoved())
	c.ACK()
	s.commit(t, setCluster("c"))
	c.ExpectResponse(conv.Updated("c"))
	c.ACK()
	c.Unsubscribe(cds, "*")
	c.ExpectNothing()
	s.commit(t, setCluster("d"))
	c.ExpectNothing()
}

// D4: a first delta request with both lists empty is a wildcard; it ends when
// the client names something.
func deltaLegacyWildcard(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds)
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	s.commit(t, setCluster("c"))
	c.ExpectResponse(conv.Updated("c"))
	c.ACK()
	c.Subscribe(cds, "a")
	c.ExpectResponse(conv.Updated("a")) // D5: a name subscribed is answered
	c.ACK()
	s.commit(t, setCluster("b", longerTimeout()))
	c.ExpectNothing()
}

// R12: over delta, LDS and CDS subscribed by name get those names only.
func deltaExplicitLDSCDS(t *testing.T, s server) {
	s.commit(t, setListener("l1", 8080, "r"), setListener("l2", 8081, "r"), setCluster("a"), setCluster("b"))
	c := s.deltaADS(t, edgeNode("grpc-1"))
	c.Subscribe(lds, "l1")
	c.ExpectResponse(conv.Updated("l1"), conv.NoRemoved())
	c.ACK()
	c.Subscribe(cds, "a")
	c.ExpectResponse(conv.Updated("a"), conv.NoRemoved())
	c.ACK()
	s.commit(t, setCluster("c"), setListener("l3", 8082, "r"))
	c.ExpectNothing()
}

// R13: over delta, a name subscribed twice and covered by "*" appears once.
func deltaNoDuplicates(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "a", "a", "*")
	c.ExpectResponse(conv.Updated("a", "b")) // conv also fails any response naming a resource twice
}

// R14, D7: a subscribed name that does not exist is announced as removed, and
// sent when it appears.
func deltaMissingThenCreated(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(eds, "a", "later")
	c.ExpectResponse(conv.Updated("a"), conv.Removed("later"))
	c.ACK()
	s.commit(t, setEndpoints("later", "10.0.0.5:80"))
	c.ExpectResponse(conv.Updated("later"), conv.NoRemoved())
}

// R15: over delta, one commit touching every type is pushed CDS, EDS, LDS, RDS.
func deltaPushOrder(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setListener("l", 8080, "r"), setRoute("r", "a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	for _, sub := range []struct {
		typeURL string
		names   []string
	}{{cds, []string{"*"}}, {eds, []string{"a"}}, {lds, []string{"*"}}, {rds, []string{"r"}}} {
		c.Subscribe(sub.typeURL, sub.names...)
		c.ExpectResponse(conv.DTypeURL(sub.typeURL))
		c.ACK()
	}
	s.commit(t, setRoute("r", "a", "b"), setListener("l", 9090, "r"), setEndpoints("a", "10.0.0.2:80"), setCluster("b"))
	var got []string
	for range 3 {
		got = append(got, protocol.Short(c.ExpectResponse().GetTypeUrl()))
	}
	// The route to the new cluster b waits while b warms: like Envoy, the client
	// asks for b's endpoints after the CDS update, and the route follows them.
	c.ExpectNothing()
	// Envoy asks for b's endpoints before it ACKs the clusters: an ACK of the
	// clusters alone would release the route (R19).
	c.Subscribe(eds, "b")
	for range 2 {
		got = append(got, protocol.Short(c.ExpectResponse().GetTypeUrl()))
	}
	expectEqual(t, "R15: push order", join(got), "[CDS EDS LDS EDS RDS]")
	c.ACK(cds)
}

// R15: over delta, route r moves from cluster a to cluster b, and a and its
// endpoints are deleted in one commit. Neither a nor its endpoints are announced
// removed before the client ACKed the route that no longer uses them.
func deltaMakeBeforeBreak(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setCluster("b"), setEndpoints("b", "10.0.0.2:80"), setRoute("r", "a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(eds, "a", "b")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(rds, "r")
	c.ExpectResponse(conv.Updated("r"))
	c.ACK()

	s.commit(t, setRoute("r", "b"), drop(cds, "a"), drop(eds, "a"))
	c.ExpectResponse(conv.DTypeURL(rds), conv.Updated("r"), conv.NoRemoved())
	c.ExpectNothing() // a and its endpoints stay until the new route is ACKed
	c.ACK()
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated(), conv.Removed("a"))
	c.ACK()
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated(), conv.Removed("a"))
}

// R15, R16: over delta, route r moves to a new cluster c; c's endpoints, which
// the client asks for once it learns c, come before the route that uses c.
func deltaNewClusterBeforeRoute(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setRoute("r", "a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(rds, "r")
	c.ExpectResponse(conv.Updated("r"))
	c.ACK()

	s.commit(t, setCluster("c"), setEndpoints("c", "10.0.0.3:80"), setRoute("r", "c"))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("c"))
	c.ExpectNothing() // c warms: the route waits
	// Envoy subscribes c's endpoints before it ACKs the clusters (R19).
	c.Subscribe(eds, "c")
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("c")) // before the route that uses c
	c.ExpectResponse(conv.DTypeURL(rds), conv.Updated("r"))
	c.ACK(cds)
	c.ACK(eds)
	c.ACK(rds)
	c.ExpectNothing()
}

// R16: over delta, an updated cluster gets its unchanged endpoints again, and an
// updated listener its unchanged route.
func deltaWarmingAnswered(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setListener("l", 8080, "r"), setRoute("r", "a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "a")
	ends := c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(lds, "*")
	c.ExpectResponse(conv.Updated("l"))
	c.ACK()
	c.Subscribe(rds, "r")
	routes := c.ExpectResponse(conv.Updated("r"))
	c.ACK()

	s.commit(t, setCluster("a", longerTimeout()))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("a"))
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("a"), conv.VersionOf("a", ends.VersionOf("a")))
	c.ACK(cds)
	c.ACK(eds)
	s.commit(t, setListener("l", 9090, "r"))
	c.ExpectResponse(conv.DTypeURL(lds), conv.Updated("l"))
	c.ExpectResponse(conv.DTypeURL(rds), conv.Updated("r"), conv.VersionOf("r", routes.VersionOf("r")))
}

// D3, D8: after a server restart, during which one cluster changed and one was
// deleted, a client presenting what it holds gets the changed one and the removal
// only; a client holding the current content gets nothing.
func deltaReconnect(t *testing.T, s server) {
	s.commit(t, setCluster("keep"), setCluster("change"), setCluster("gone"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	r := c.ExpectResponse(conv.Updated("keep", "change", "gone"))
	c.ACK()
	held := map[string]string{"keep": r.VersionOf("keep"), "change": r.VersionOf("change"), "gone": r.VersionOf("gone")}

	s.stop()
	c.ExpectError(codes.Unavailable)
	s.commit(t, setCluster("change", longerTimeout()), drop(cds, "gone"))
	s.start(t)
	again := s.deltaADS(t, edgeNode("envoy-1"))
	again.InitialVersions(cds, held, "*")
	again.ExpectResponse(conv.Updated("change"), conv.Removed("gone"))
	again.ACK()
	again.ExpectNothing()

	current := s.view().Table(scope, cds)
	quiet := s.deltaADS(t, edgeNode("envoy-2"))
	quiet.InitialVersions(cds, map[string]string{"keep": current.Get("keep").Version, "change": current.Get("change").Version}, "*")
	quiet.ExpectNothing()
}

// D6: unsubscribing a name the client does not hold, and one it holds, needs no
// answer; the dropped name's changes are no longer sent.
func deltaUnsubscribe(t *testing.T, s server) {
	s.commit(t, setEndpoints("a", "10.0.0.1:80"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Unsubscribe(eds, "never-held")
	c.ExpectNothing()
	c.Unsubscribe(eds, "a")
	c.ExpectNothing()
	s.commit(t, setEndpoints("a", "10.0.0.2:80"))
	c.ExpectNothing()
}

// D7: a deletion is announced in removed_resources, and a resource created again
// comes back as an update with nothing removed.
func deltaRemovedResources(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "a", "ghost")
	c.ExpectResponse(conv.Updated("a"), conv.Removed("ghost"))
	c.ACK()
	s.commit(t, drop(cds, "a"))
	c.ExpectResponse(conv.Updated(), conv.Removed("a"))
	c.ACK()
	s.commit(t, setCluster("ghost"))
	c.ExpectResponse(conv.Updated("ghost"), conv.NoRemoved())
}

// P2: over delta, a cluster without endpoints gets an explicit empty assignment.
func deltaEmptyAssignment(t *testing.T, s server) {
	s.commit(t, setCluster("lonely"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("lonely"))
	c.ACK()
	c.Subscribe(eds, "lonely")
	r := c.ExpectResponse(conv.Updated("lonely"), conv.NoRemoved())
	expectEmptyAssignment(t, r.Resource("lonely"))
}
