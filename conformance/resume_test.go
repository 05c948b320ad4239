package conformance_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
)

// resumeScenarios are about a client that comes back on a new stream presenting
// the version it last accepted, for a subscription that names resources: the
// version does not say what it holds now, so it is answered (S6).
var resumeScenarios = []scenario{
	{id: "resume-after-unsubscribe", title: "a route the client dropped, asked for on a new stream with the version it last accepted, is sent at that version",
		rules:   []string{"S6"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwResumeAfterUnsubscribe},
		run:     map[client]func(*testing.T){grpcGo: grpcResumeAfterUnsubscribe}},
	{id: "resume-owed-endpoints", title: "endpoints owed to an updated cluster when the stream broke are sent on the new stream, though their version is current",
		rules:   []string{"S6", "R16"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwResumeOwedEndpoints}},
}

// S6: the client subscribed to route r, accepted it, dropped it (forgetting it),
// and its stream ended. On a new stream it asks for r with the version it last
// accepted of its RDS, which is still r's, and no nonce, as grpc-go does. It does
// not hold r, so r is sent, at that same version.
func sotwResumeAfterUnsubscribe(t *testing.T, s server) {
	s.commit(t, setRoute("r", "a"))
	c := s.ads(t, edgeNode("grpc-1"))
	c.Request(rds, "r")
	rv := c.ExpectResponse(conv.Names("r")).Version()
	c.ACK()
	c.Request(rds) // S4: no name any more (R11), and the client forgets r
	c.Close()
	c.ExpectError(codes.OK)

	again := s.ads(t, edgeNode("grpc-1"))
	again.Send(&discoveryv3.DiscoveryRequest{Node: edgeNode("grpc-1"), TypeUrl: rds, ResourceNames: []string{"r"}, VersionInfo: rv})
	again.ExpectResponse(conv.TypeURL(rds), conv.Names("r"), conv.Version(rv)) // S6
	again.ACK()
	again.ExpectNothing() // R6: and once only
}

// S6, R16: an Envoy-like client holds every cluster (wildcard) and the endpoints
// of a. Cluster a is updated: the server sends it, then a's unchanged endpoints
// (R16: the updated cluster warms until they come). The client takes the cluster
// in, and the connection breaks before the endpoints reach it. On a new stream
// it presents what it holds: its CDS version, current, gets nothing (S3); a's
// endpoints, named at their version, which is still current, are sent all the
// same, since the new stream cannot know the old one delivered them.
func sotwResumeOwedEndpoints(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a")
	ev := c.ExpectResponse(conv.Names("a")).Version()
	c.ACK()

	s.commit(t, setCluster("a", longerTimeout()))
	cv := c.ExpectResponse(conv.TypeURL(cds), conv.Names("a")).Version()
	c.Cancel() // what follows the cluster is lost with the connection

	again := s.ads(t, edgeNode("envoy-1"))
	again.Send(&discoveryv3.DiscoveryRequest{Node: edgeNode("envoy-1"), TypeUrl: cds, VersionInfo: cv})
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, ResourceNames: []string{"a"}, VersionInfo: ev})
	again.ExpectResponse(conv.TypeURL(eds), conv.Names("a"), conv.Version(ev)) // S6, R16
	again.ACK()
	again.ExpectNothing() // S3: the wildcard CDS is current
}

// S6, as grpc-go met it. grpc-go's API listener svc uses route svc-route (to
// cluster ca, backend b1) over RDS; it moves to an inline route (to cluster cb,
// backend b2), so grpc-go drops svc-route (RDS names=[]) and forgets it; then
// back to svc-route, unchanged, and the stream breaks just as grpc-go's request
// naming it arrives. On the new stream grpc-go asks for svc-route with the RDS
// version it last accepted, svc-route's own, and no nonce. Unless the server
// sends svc-route, grpc-go never gets it: its RPCs stay on b2, then fail once its
// resource-not-found timer (15s, which no public grpc-go API shortens) expires,
// and again after every reconnect, which presents the same version.
//
// The RPCs reaching b1 again prove that grpc-go holds svc-route, which it can only
// have from the new stream: it was forgotten, and the request of the old stream
// never reached the server. Holding it, grpc-go has stopped that timer.
func grpcResumeAfterUnsubscribe(t *testing.T) {
	const node = "grpc-resume"
	srv := startServer(t)
	b := startGRPCBackends(t)
	route := xdstest.Route(svcRoute, xdstest.VirtualHost("svc", []string{"*"}, xdstest.RouteTo("/", "ca")))
	srv.commit(t,
		store.Set(scope, xdstest.APIListener(svcListener, svcRoute)),
		store.Set(scope, route),
		setCluster("ca"), setEndpoints("ca", b["b1"]),
		setCluster("cb"), setEndpoints("cb", b["b2"]),
	)
	d := newGRPCDriver(t, srv, node, scope)
	d.start(t)
	j := &journeyRun{t: t, drivers: map[string]driver{"a": d}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("what crossed the wire for %s:\n%s", node, srv.log.transcript(node))
		}
	})
	j.waitServed("a", []string{"b1"})
	routeVersion := lastVersionSent(srv.log, node, rds, svcRoute)

	srv.commit(t, store.Set(scope, inlineRouteListener("cb")))
	j.waitServed("a", []string{"b2"})

	traffic := keepCalling(t, d)
	fired := srv.breakStreamOn(t, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == rds && slices.Contains(r.GetResourceNames(), svcRoute)
	})
	srv.commit(t, store.Set(scope, xdstest.APIListener(svcListener, svcRoute)))
	broken := fired()

	// The conditions of S6: grpc-go dropped the route before asking for it
	// again, and asks for it on the new stream with the version of the route.
	var dropped bool
	for _, r := range srv.log.requestsOf(node) {
		if r.call == broken.call && r.at.Before(broken.at) && r.typeURL() == rds && len(r.sotw.GetResourceNames()) == 0 {
			dropped = true
		}
	}
	if !dropped {
		t.Fatalf("grpc-go did not drop %s (RDS names=[]) before asking for it again", svcRoute)
	}
	t.Logf("the stream broke as grpc-go asked for RDS %v (version %q, nonce %q)",
		broken.sotw.GetResourceNames(), broken.sotw.GetVersionInfo(), broken.sotw.GetResponseNonce())

	j.waitServed("a", []string{"b1"})
	if sent, failed := traffic(); len(failed) > 0 {
		t.Errorf("%d of %d RPCs failed while the listener moved back to %s and the stream broke; first: %s", len(failed), sent, svcRoute, failed[0])
	} else {
		t.Logf("%d RPCs while the listener moved back to %s and the stream broke, none failed", sent, svcRoute)
	}
	d.check(t)

	var resumed *discoveryv3.DiscoveryRequest
	for _, r := range srv.log.requestsOf(node) {
		if r.call > broken.call && r.typeURL() == rds {
			resumed = r.sotw
			break
		}
	}
	switch {
	case resumed == nil:
		t.Errorf("grpc-go sent no RDS request on the new stream")
	case !slices.Equal(resumed.GetResourceNames(), []string{svcRoute}) || resumed.GetVersionInfo() != routeVersion || resumed.GetResponseNonce() != "":
		t.Errorf("on the new stream grpc-go asked for RDS %v at version %q, nonce %q; the scenario needs [%s] at %q, no nonce",
			resumed.GetResourceNames(), resumed.GetVersionInfo(), resumed.GetResponseNonce(), svcRoute, routeVersion)
	}
	var sent bool
	for _, r := range srv.log.responsesTo(node, broken.at) {
		if r.typeURL == rds && slices.Contains(r.names, svcRoute) {
			sent = true
			expectEqual(t, "S6: version of the route sent on the new stream", r.version, routeVersion)
		}
	}
	if !sent {
		t.Errorf("S6: %s was not sent on the new stream", svcRoute)
	}
}

// keepCalling makes RPCs one after the other until stop is called; stop says
// how many were made and why those that failed did.
func keepCalling(t *testing.T, d *grpcDriver) (stop func() (sent int, failed []string)) {
	ctx, cancel := context.WithCancel(t.Context())
	var (
		wg     sync.WaitGroup
		sent   int
		failed []string
	)
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, r := range d.send(ctx, 1) {
				sent++
				if r.err != nil && ctx.Err() == nil {
					failed = append(failed, r.err.Error())
				}
			}
			time.Sleep(time.Millisecond) // leave the client room to work
		}
	})
	stop = func() (int, []string) {
		cancel()
		wg.Wait()
		return sent, failed
	}
	t.Cleanup(func() { stop() }) // when the test ends before it is called
	return stop
}

// inlineRouteListener is the API listener svc with its route configuration
// inline, sending everything to cluster: grpc-go needs no RDS for it.
func inlineRouteListener(cluster string) *listenerv3.Listener {
	l := xdstest.APIListener(svcListener, svcRoute)
	editHCM(l, func(h *hcmv3.HttpConnectionManager) {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{
			RouteConfig: xdstest.Route("svc-inline", xdstest.VirtualHost("svc", []string{"*"}, xdstest.RouteTo("/", cluster))),
		}
	})
	return l
}

// lastVersionSent is the version of the newest response of typeURL that carried
// name to node.
func lastVersionSent(l *wireLog, node, typeURL, name string) string {
	var v string
	for _, r := range l.responsesTo(node, time.Time{}) {
		if r.typeURL == typeURL && slices.Contains(r.names, name) {
			v = r.version
		}
	}
	return v
}
