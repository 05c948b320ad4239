package conformance_test

import (
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// livenessScenarios are the corner cases of make before break and of what is
// owed to a client (R15, R16, D3–D7, X1, X2, P2): make before break never waits
// forever, and what is owed is not lost.
var livenessScenarios = []scenario{
	{id: "replace-and-remove", title: "a route moving to a new cluster while the old one is deleted: the new cluster warms first, the old goes once the route is ACKed",
		rules:   []string{"R15", "R19"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwReplaceAndRemove, scriptedDelta: deltaReplaceAndRemove}},
	{id: "named-replacement", title: "a client naming its clusters keeps the old one until it answered the route update, then loses it",
		rules:   []string{"R15", "R18", "R19"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwNamedReplacement}},
	{id: "route-not-held-for-other-stream", title: "a route is not held for endpoints the client gets over another stream",
		rules:   []string{"R15", "R19"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwRouteNotHeldForOtherStream}},
	{id: "rejected-cluster-pins-nothing", title: "a cluster the client rejected does not keep deleted clusters alive",
		rules:   []string{"R15"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwRejectedClusterPinsNothing}},
	{id: "virtual-hosts-keep-clusters", title: "clusters a virtual host (VHDS) uses are kept while the client may use them",
		rules:   []string{"R15"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaVirtualHostsKeepClusters}},
	{id: "reconnect-keeps-owed-endpoints", title: "a reconnect whose EDS version is current still gets the endpoints owed to the clusters just sent",
		rules:   []string{"R16", "S3", "P3"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwReconnectKeepsOwedEndpoints}},
	{id: "delta-reconnect-owed-endpoints", title: "a delta reconnect after many clusters changed gets every owed assignment, however many",
		rules:   []string{"R16", "D3"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaReconnectOwedEndpoints}},
	{id: "normalized-references", title: "references between resources are normalized like names: a listener's route in another spelling is still answered",
		rules:   []string{"X1", "R16"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwNormalizedReferences}},
	{id: "normalized-service-name", title: "an EDS service named in xdstp form gets its empty assignment whatever the order of its parameters",
		rules:   []string{"X1", "P2"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwNormalizedServiceName}},
	{id: "cluster-appears-later", title: "a cluster created after its endpoints were asked for gets its explicit empty assignment",
		rules:   []string{"P2"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwClusterAppearsLater}},
	{id: "wildcard-on-announces-deletions", title: "turning the wildcard on still announces what was deleted meanwhile",
		rules:   []string{"D7"},
		scripts: map[client]func(*testing.T, server){memoryDelta: deltaWildcardOnAnnouncesDeletions}},
	{id: "glob-still-covers", title: "a member a glob still covers is sent again after its own name is unsubscribed",
		rules:   []string{"D6", "X2"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaGlobStillCovers}},
	{id: "glob-reconnect", title: "a glob on reconnect sends only the members that differ",
		rules:   []string{"D3", "X2"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaGlobReconnect}},
}

// R15, R19: route r moves from a to new cluster c and a is deleted, in one
// commit. CDS goes first, with c and still a (r uses a on the client); the route
// waits until c has its endpoints, which the client asks for before it ACKs the
// clusters; a goes only once the route is ACKed. Then, in a commit adding
// nothing, CDS says nothing until the route stops using the deleted cluster.
func sotwReplaceAndRemove(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), setRoute("r", "a"))
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

	s.commit(t, setRoute("r", "c"), setCluster("c"), drop(cds, "a"))
	first := c.ExpectResponse(conv.TypeURL(cds), conv.Names("a", "b", "c"))
	c.ExpectNothing() // c warms: the route waits
	c.Request(eds, "a", "b", "c")
	c.ExpectResponse(conv.TypeURL(eds), conv.Names("c"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ACK(cds)
	c.ACK(eds)
	c.ExpectNothing() // not before the route update is ACKed
	c.ACK(rds)
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("b", "c"), conv.VersionNot(first.Version()))
	c.ACK()
	c.ExpectNothing()

	s.commit(t, setRoute("r", "b"), drop(cds, "c"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ACK()
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("b"))
}

// R15, R19: the same over delta, a's endpoints deleted too: neither a nor its
// endpoints are announced removed before the route is ACKed.
func deltaReplaceAndRemove(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), setRoute("r", "a"), setEndpoints("a", "10.0.0.1:80"))
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

	s.commit(t, setRoute("r", "c"), setCluster("c"), drop(cds, "a"), drop(eds, "a"))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("c"), conv.NoRemoved())
	c.ExpectNothing() // a's endpoints stay, and the route waits for c to warm
	c.Subscribe(eds, "c")
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("c"), conv.NoRemoved())
	c.ExpectResponse(conv.DTypeURL(rds), conv.Updated("r"))
	c.ACK(cds)
	c.ACK(eds)
	c.ExpectNothing() // not before the route update is ACKed
	c.ACK(rds)
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated(), conv.Removed("a"))
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated(), conv.Removed("a"))
}

// R15, R18, R19: a client that names its clusters (gRPC, P4) asks for the new
// one only after it has the route: the old cluster stays until the client has
// answered the route update; then it goes (grpc-go ACKs the route before it
// subscribes the new cluster, and the server can wait on nothing else).
func sotwNamedReplacement(t *testing.T, s server) {
	s.commit(t, setCluster("c1"), setRoute("r", "c1"))
	c := s.ads(t, edgeNode("grpc-1"))
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()
	c.Request(cds, "c1")
	c.ExpectResponse(conv.Names("c1"))
	c.ACK()

	s.commit(t, setRoute("r", "c2"), setCluster("c2"), drop(cds, "c1"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ExpectNothing() // c1 stays while the client may still route to it
	c.ACK()
	c.ExpectResponse(conv.TypeURL(cds), conv.Names())
	c.ACK()
	c.Request(cds, "c1", "c2")
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("c2"))
}

// R15, R19: the client gets its endpoints on a per-type EDS stream, so the route
// on its ADS stream is not held for endpoints that never come over it.
func sotwRouteNotHeldForOtherStream(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setRoute("r", "a"))
	ads := s.ads(t, edgeNode("envoy-1"))
	ads.Request(cds)
	ads.ExpectResponse(conv.Names("a"))
	ads.ACK()
	es := s.typed(t, eds, edgeNode("envoy-1"))
	es.Request(eds, "a")
	es.ExpectResponse(conv.Names("a"))
	es.ACK()
	ads.Request(rds, "r")
	ads.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
}

// R15: the client rejected cluster a; deleting d, which no route uses, is not
// held back by the rejected version.
func sotwRejectedClusterPinsNothing(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("d"), setEndpoints("d", "10.0.0.1:80"), setRoute("r", "a"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a", "d"))
	c.NACK("cluster a: rejected")
	c.Request(eds, "d")
	c.ExpectResponse(conv.Names("d"))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()
	s.commit(t, drop(cds, "d"), drop(eds, "d"))
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("a"))
}

// R15: a virtual host moves from cluster a to new cluster c and a is deleted: a
// is not announced removed while the client may still use it.
func deltaVirtualHostsKeepClusters(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), store.Set(scope, xdstest.VirtualHost("r/vh", []string{"*"}, xdstest.RouteTo("/", "a"))))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(protocol.TypeVirtualHost, "r/vh")
	c.ExpectResponse(conv.Updated("r/vh"))
	c.ACK()
	s.commit(t, store.Set(scope, xdstest.VirtualHost("r/vh", []string{"*"}, xdstest.RouteTo("/", "c"))),
		setCluster("c"), drop(cds, "a"))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("c"), conv.NoRemoved())
}

// R16, S3, P3: cluster a changed while the client was away. Reconnecting with the
// CDS version it held, it gets the new a (P3: that version is not current);
// with the EDS version it holds, current, it still gets a's endpoints, owed to
// the cluster it was just sent (R16).
func sotwReconnectKeepsOwedEndpoints(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	cv := c.ExpectResponse(conv.Names("a")).Version()
	c.ACK()
	c.Request(eds, "a")
	ev := c.ExpectResponse(conv.Names("a")).Version()
	c.ACK()
	s.commit(t, setCluster("a", longerTimeout()))
	again := s.ads(t, edgeNode("envoy-1b"))
	again.Send(&discoveryv3.DiscoveryRequest{Node: edgeNode("envoy-1b"), TypeUrl: cds, VersionInfo: cv})
	again.ExpectResponse(conv.TypeURL(cds), conv.Names("a"), conv.VersionNot(cv)) // P3
	again.ACK()
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, VersionInfo: ev, ResourceNames: []string{"a"}})
	again.ExpectResponse(conv.TypeURL(eds), conv.Names("a"), conv.Version(ev)) // R16
}

// R16, D3: every cluster changed while the client was away; reconnecting with
// what it holds, it gets them all, then every assignment owed to them although
// unchanged: for 3 clusters, and for 40, more than a response names one by one.
func deltaReconnectOwedEndpoints(t *testing.T, s server) {
	var all []string // every cluster so far: a wildcard reconnect holds them all
	for _, n := range []int{3, 40} {
		var names []string
		var ch []store.Change
		for i := range n {
			name := fmt.Sprintf("n%d-c%02d", n, i)
			names = append(names, name)
			ch = append(ch, setCluster(name), setEndpoints(name, "10.0.0.1:80"))
		}
		all = append(all, names...)
		s.commit(t, ch...)
		v := s.view()
		hc, he := map[string]string{}, map[string]string{}
		for _, name := range all {
			hc[name] = v.Table(scope, cds).Get(name).Version
		}
		for _, name := range names {
			he[name] = v.Table(scope, eds).Get(name).Version
		}
		ch = nil
		for _, name := range names {
			ch = append(ch, setCluster(name, longerTimeout()))
		}
		s.commit(t, ch...)
		c := s.deltaADS(t, edgeNode(fmt.Sprintf("envoy-%d", n)))
		c.InitialVersions(cds, hc, "*")
		c.ExpectResponse(conv.DTypeURL(cds), conv.Updated(names...))
		c.ACK()
		c.InitialVersions(eds, he, names...)
		c.ExpectResponse(conv.DTypeURL(eds), conv.Updated(names...))
	}
}

// X1, R16: listener l names its route with the parameters in another order than
// the route's own name; an update of l still answers the route (R16).
func sotwNormalizedReferences(t *testing.T, s server) {
	const route, routeSwap = "xdstp://auth/envoy.config.route.v3.RouteConfiguration/r?a=1&b=2",
		"xdstp://auth/envoy.config.route.v3.RouteConfiguration/r?b=2&a=1"
	s.commit(t, setListener("l", 8080, routeSwap), setRoute(route))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(lds)
	c.ExpectResponse(conv.Names("l"))
	c.ACK()
	c.Request(rds, route)
	rv := c.ExpectResponse(conv.Names(route)).Version()
	c.ACK()
	s.commit(t, setListener("l", 9090, routeSwap))
	c.ExpectResponse(conv.TypeURL(lds), conv.Names("l"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names(route), conv.Version(rv))
}

// X1, P2: cluster c names its EDS service with the parameters in one order; the
// client asks for it in the other, and gets the explicit empty assignment.
func sotwNormalizedServiceName(t *testing.T, s server) {
	const svc, svcSwap = "xdstp://auth/envoy.config.endpoint.v3.ClusterLoadAssignment/s?a=1&b=2",
		"xdstp://auth/envoy.config.endpoint.v3.ClusterLoadAssignment/s?b=2&a=1"
	s.commit(t, setCluster("c", xdstest.WithServiceName(svcSwap)))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("c"))
	c.ACK()
	c.Request(eds, svc)
	c.ExpectResponse(conv.TypeURL(eds), conv.Names(svc))
}

// P2: on a per-type EDS stream, endpoints asked for before their cluster exists
// are not sent; once the cluster is created, its explicit empty assignment is.
func sotwClusterAppearsLater(t *testing.T, s server) {
	s.commit(t, setCluster("other"))
	c := s.typed(t, eds, edgeNode("envoy-1"))
	c.Request(eds, "svc")
	c.ExpectNothing()
	s.commit(t, setCluster("svc"))
	expectEmptyAssignment(t, c.ExpectResponse(conv.Names("svc")).Resource("svc"))
}

// D7: the client holds a and b, subscribed by name; a is deleted and, before
// the server has said so, the client turns the wildcard on. The answer still
// announces a removed. In memory only: on the wire the deletion may be announced
// before the wildcard request arrives.
func deltaWildcardOnAnnouncesDeletions(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "a", "b")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	s.commit(t, drop(cds, "a"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Removed("a"))
}

const (
	globC1 = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a=1&b=2"
	globC2 = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c2?a=1&b=2"
	glob   = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/*?a=1&b=2"
)

// D6, X2: c1 is subscribed by name and by a glob; unsubscribing the name sends
// c1 again, as the glob still covers it.
func deltaGlobStillCovers(t *testing.T, s server) {
	s.commit(t, setCluster(globC1), setCluster(globC2))
	d := s.deltaADS(t, edgeNode("envoy-1"))
	d.Subscribe(cds, glob, globC1)
	d.ExpectResponse(conv.Updated(globC1, globC2))
	d.ACK()
	d.Unsubscribe(cds, globC1)
	d.ExpectResponse(conv.Updated(globC1), conv.NoRemoved())
}

// D3, X2: a client reconnecting with a glob and the current versions of its
// members gets nothing.
func deltaGlobReconnect(t *testing.T, s server) {
	s.commit(t, setCluster(globC1), setCluster(globC2))
	v := s.view().Table(scope, cds)
	d := s.deltaADS(t, edgeNode("envoy-1"))
	d.InitialVersions(cds, map[string]string{globC1: v.Get(globC1).Version, globC2: v.Get(globC2).Version}, glob)
	d.ExpectNothing()
}
