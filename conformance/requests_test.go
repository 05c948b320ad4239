package conformance_test

import (
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// requestScenarios are about what a client may ask: types the server does not
// serve, requests it cannot serve, the per-type services, and the sequence in
// which grpc-go asks.
var requestScenarios = []scenario{
	{id: "unknown-type", title: "a type the server does not serve is answered as an empty set, and the stream goes on",
		rules:   []string{"P8"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwUnknownType, scriptedDelta: deltaUnknownType}},
	{id: "bad-input", title: "a request the server cannot serve ends its own stream with InvalidArgument and what was wrong, and no other",
		rules:   []string{"P7"},
		opts:    stream.Options{Limits: stream.Limits{MaxNames: 3, MaxTypes: 2}},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwBadInput, scriptedDelta: deltaBadInput}},
	{id: "per-type-services", title: "each per-type service serves its one type by the same rules as ADS",
		rules:   []string{"P9"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwPerTypeServices, scriptedDelta: deltaPerTypeServices}},
	{id: "grpc-style-sequence", title: "LDS, RDS, CDS, EDS asked for one level at a time by name, the Node on the first request only",
		rules:   []string{"P4"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwGRPCStyleSequence}},
	{id: "explicit-full-state", title: "CDS named explicitly gets every named cluster each time and no other; beside \"*\" it gets them all",
		rules:   []string{"R10", "R12", "S1"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwExplicitFullState}},
}

// unknownType is a type URL leanxds does not serve.
const unknownType = "type.googleapis.com/envoy.config.unknown.v3.Thing"

// P8: a request for an unknown type is answered with no resource; the type is
// reported as not served, and the stream serves the next request.
func sotwUnknownType(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(unknownType, "x")
	c.ExpectResponse(conv.TypeURL(unknownType), conv.Empty())
	c.ACK()
	c.ExpectNothing()
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	st := s.status(t, "envoy-1", nil)
	expectEqual(t, "P8: served", typeStatus(st, unknownType).Served, false)
}

// P8: over delta, the name asked for is announced as not existing (D7).
func deltaUnknownType(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(unknownType, "x")
	c.ExpectResponse(conv.DTypeURL(unknownType), conv.Updated(), conv.Removed("x"))
	c.ACK()
	c.Subscribe(cds, "a")
	c.ExpectResponse(conv.Updated("a"))
}

// P7: more names than Limits.MaxNames (3), a request without type_url, a type the
// per-type service does not serve, and more type URLs than Limits.MaxTypes (2)
// each end their own stream; a good stream beside them is still served.
func sotwBadInput(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	good := s.ads(t, edgeNode("good"))
	good.Request(cds)
	good.ExpectResponse(conv.Names("a"))
	good.ACK()

	many := s.ads(t, edgeNode("many"))
	many.Request(eds, "1", "2", "3", "4")
	mustContain(t, many.ExpectError(codes.InvalidArgument), "more than the limit of 3")

	noType := s.ads(t, edgeNode("notype"))
	noType.Send(&discoveryv3.DiscoveryRequest{Node: edgeNode("notype")})
	mustContain(t, noType.ExpectError(codes.InvalidArgument), "type_url")

	wrong := s.typed(t, cds, edgeNode("wrong"))
	wrong.Request(eds, "a")
	mustContain(t, wrong.ExpectError(codes.InvalidArgument), "cds service")

	// Only the types a client asked for count: the clusters it is sent make
	// the server owe it their endpoints (R16), which takes no place of a type.
	types := s.ads(t, edgeNode("types"))
	types.Request(cds)
	types.ExpectResponse(conv.Names("a"))
	types.ACK()
	types.Request(lds)
	types.ExpectResponse()
	types.Request(eds, "a")
	mustContain(t, types.ExpectError(codes.InvalidArgument), "limit of 2")

	s.commit(t, setCluster("b"))
	good.ExpectResponse(conv.Names("a", "b"))
}

// P7: the same over delta, and R2: a first request without a node.
func deltaBadInput(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	good := s.deltaADS(t, edgeNode("good"))
	good.Subscribe(cds, "*")
	good.ExpectResponse(conv.Updated("a"))
	good.ACK()

	noNode := s.deltaADS(t, nil)
	noNode.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds})
	mustContain(t, noNode.ExpectError(codes.InvalidArgument), "node")

	many := s.deltaADS(t, edgeNode("many"))
	many.Subscribe(eds, "1", "2", "3", "4")
	mustContain(t, many.ExpectError(codes.InvalidArgument), "limit of 3")

	wrong := s.deltaTyped(t, cds, edgeNode("wrong"))
	wrong.Subscribe(eds, "a")
	mustContain(t, wrong.ExpectError(codes.InvalidArgument), "cds service")

	s.commit(t, setCluster("b"))
	good.ExpectResponse(conv.Updated("b"))
}

// perTypeContent is one resource of each type a per-type service serves.
func perTypeContent() []store.Change {
	return []store.Change{
		setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setListener("l", 8080, "r"), setRoute("r", "a"),
		store.Set(scope, xdstest.Secret("s")), store.Set(scope, xdstest.Runtime("rt", map[string]any{"k": "v"})),
		store.Set(scope, xdstest.ExtensionConfig("ext")),
	}
}

// P9: each SotW per-type service answers its type, then is silent once ACKed.
func sotwPerTypeServices(t *testing.T, s server) {
	s.commit(t, perTypeContent()...)
	for _, tc := range []struct{ typeURL, name string }{
		{cds, "a"}, {eds, "a"}, {lds, "l"}, {rds, "r"},
		{protocol.TypeSecret, "s"}, {protocol.TypeRuntime, "rt"}, {protocol.TypeExtensionCfg, "ext"},
	} {
		c := s.typed(t, tc.typeURL, edgeNode("typed-"+protocol.Short(tc.typeURL)))
		c.Request(tc.typeURL, tc.name)
		c.ExpectResponse(conv.TypeURL(tc.typeURL), conv.Names(tc.name))
		c.ACK()
		c.ExpectNothing()
	}
}

// P9: the same over the incremental per-type services, LEDS included.
func deltaPerTypeServices(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), store.SetNamed(scope, "xdstp://leds/ep-1", &endpointv3.LbEndpoint{}))
	for _, tc := range []struct{ typeURL, name string }{
		{cds, "a"}, {eds, "a"}, {protocol.TypeLbEndpoint, "xdstp://leds/ep-1"},
	} {
		c := s.deltaTyped(t, tc.typeURL, edgeNode("typed-"+protocol.Short(tc.typeURL)))
		c.Subscribe(tc.typeURL, tc.name)
		c.ExpectResponse(conv.DTypeURL(tc.typeURL), conv.Updated(tc.name))
		c.ACK()
		c.ExpectNothing()
	}
}

// P4: the scripted client asks as grpc-go does, one level at a time by name.
func sotwGRPCStyleSequence(t *testing.T, s server) {
	s.commit(t, store.Set(scope, xdstest.APIListener("svc", "svc-route")), setRoute("svc-route", "svc-cluster"),
		setCluster("svc-cluster"), setEndpoints("svc-cluster", "127.0.0.1:5000"))
	c := s.ads(t, edgeNode("grpc-client"))
	for _, step := range []struct{ typeURL, name string }{
		{lds, "svc"}, {rds, "svc-route"}, {cds, "svc-cluster"}, {eds, "svc-cluster"},
	} {
		c.Request(step.typeURL, step.name)
		c.ExpectResponse(conv.TypeURL(step.typeURL), conv.Names(step.name))
		c.ACK()
	}
	c.ExpectNothing()
}

// R10, R12, S1: a client naming clusters a and b (as gRPC does) gets a and b
// whenever either changes, and nothing of c or d; a client subscribed to "*"
// beside a gets every cluster, and the whole set without c once c is deleted.
func sotwExplicitFullState(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), setCluster("c"))
	explicit := s.ads(t, edgeNode("grpc-1"))
	explicit.Request(cds, "a", "b")
	explicit.ExpectResponse(conv.Names("a", "b"))
	explicit.ACK()
	wild := s.ads(t, edgeNode("envoy-2"))
	wild.Request(cds, "*", "a")
	wild.ExpectResponse(conv.Names("a", "b", "c"))
	wild.ACK()

	s.commit(t, setCluster("b", longerTimeout()), setCluster("d"))
	explicit.ExpectResponse(conv.Names("a", "b")) // S1: the full state of what it names; not d (R12)
	wild.ExpectResponse(conv.Names("a", "b", "c", "d"))
	explicit.ACK()
	wild.ACK()
	s.commit(t, setCluster("c", longerTimeout()))
	explicit.ExpectNothing() // c is not its business
	wild.ExpectResponse(conv.Names("a", "b", "c", "d"))
	wild.ACK()
	s.commit(t, drop(cds, "c"))
	wild.ExpectResponse(conv.Names("a", "b", "d")) // S1: left out is deleted
}
