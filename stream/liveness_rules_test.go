package stream_test

import (
	"fmt"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Make before break never waits forever, and what is owed is not lost: the
// corner cases of R15, R16, D3–D7, X1–X2 and P2.

// R15: a route is not held for endpoints that do not come over this stream.
func TestR15RouteNotHeldWithoutEDSOnStream(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster("a")), eps("a", "10.0.0.1:80"), store.Set(scope, xdstest.SimpleRoute("r", "a")))
	ads := conv.ADS(t, e.cc, edge)
	ads.Request(cds)
	ads.ExpectResponse(conv.Names("a"))
	ads.ACK()
	es := conv.Typed(t, e.cc, eds, edge)
	es.Request(eds, "a")
	es.ExpectResponse(conv.Names("a"))
	es.ACK()
	ads.Request(rds, "r")
	ads.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
}

// R15: a cluster the client rejected does not keep every deleted cluster alive.
func TestR15RejectedClusterPinsNothing(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("a", "d"), eps("d", "10.0.0.1:80"), store.Set(scope, xdstest.SimpleRoute("r", "a")))...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse(conv.Names("a", "d"))
	c.NACK("cluster a: rejected")
	c.Request(eds, "d")
	c.ExpectResponse(conv.Names("d"))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()
	e.commit(t, store.Delete(scope, cds, "d"), store.Delete(scope, eds, "d"))
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("a"))
}

// R16, S3: a reconnect that matches its EDS version keeps the EDS answers owed to
// the clusters its CDS reconnect was just sent.
func TestR16S3ReconnectKeepsOwedEDS(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster("a")), eps("a", "10.0.0.1:80"))
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	cv := c.ExpectResponse(conv.Names("a")).Version()
	c.ACK()
	c.Request(eds, "a")
	ev := c.ExpectResponse(conv.Names("a")).Version()
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(4*time.Second))))
	again := conv.ADS(t, e.cc, node("envoy-1b", scope))
	again.Send(&discoveryv3.DiscoveryRequest{Node: node("envoy-1b", scope), TypeUrl: cds, VersionInfo: cv})
	again.ExpectResponse(conv.TypeURL(cds), conv.Names("a"), conv.VersionNot(cv)) // P3
	again.ACK()
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: eds, VersionInfo: ev, ResourceNames: []string{"a"}})
	again.ExpectResponse(conv.TypeURL(eds), conv.Names("a"), conv.Version(ev)) // R16
}

// R16, D3: after many clusters changed, a delta reconnect still gets every owed
// assignment, however many.
func TestR16D3DeltaReconnectOwedEDS(t *testing.T) {
	for _, n := range []int{3, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t)
			var names []string
			var ch []store.Change
			for i := range n {
				name := fmt.Sprintf("c%02d", i)
				names = append(names, name)
				ch = append(ch, store.Set(scope, xdstest.Cluster(name)), eps(name, "10.0.0.1:80"))
			}
			e.commit(t, ch...)
			v := e.st.View()
			hc, he := map[string]string{}, map[string]string{}
			for _, n := range names {
				hc[n], he[n] = v.Table(scope, cds).Get(n).Version, v.Table(scope, eds).Get(n).Version
			}
			ch = nil
			for _, n := range names {
				ch = append(ch, store.Set(scope, xdstest.Cluster(n, xdstest.WithConnectTimeout(7*time.Second))))
			}
			e.commit(t, ch...)
			c := conv.DeltaADS(t, e.cc, edge)
			c.InitialVersions(cds, hc, "*")
			c.ExpectResponse(conv.DTypeURL(cds), conv.Updated(names...))
			c.ACK()
			c.InitialVersions(eds, he, names...)
			c.ExpectResponse(conv.DTypeURL(eds), conv.Updated(names...))
		})
	}
}

// X1, R16: references between resources are normalized like names.
func TestX1R16NormalizedReferences(t *testing.T) {
	const route, routeSwap = "xdstp://auth/envoy.config.route.v3.RouteConfiguration/r?a=1&b=2",
		"xdstp://auth/envoy.config.route.v3.RouteConfiguration/r?b=2&a=1"
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Listener("l", 8080, routeSwap)), store.Set(scope, xdstest.SimpleRoute(route)))
	c := conv.ADS(t, e.cc, edge)
	c.Request(lds)
	c.ExpectResponse(conv.Names("l"))
	c.ACK()
	c.Request(rds, route)
	rv := c.ExpectResponse(conv.Names(route)).Version()
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Listener("l", 9090, routeSwap)))
	c.ExpectResponse(conv.TypeURL(lds), conv.Names("l"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names(route), conv.Version(rv))
}

// X1, P2: an EDS service named in xdstp form gets its empty assignment whatever
// the order of its parameters.
func TestX1P2NormalizedServiceName(t *testing.T) {
	const svc, svcSwap = "xdstp://auth/envoy.config.endpoint.v3.ClusterLoadAssignment/s?a=1&b=2",
		"xdstp://auth/envoy.config.endpoint.v3.ClusterLoadAssignment/s?b=2&a=1"
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster("c", xdstest.WithServiceName(svcSwap))))
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse(conv.Names("c"))
	c.ACK()
	c.Request(eds, svc)
	c.ExpectResponse(conv.TypeURL(eds), conv.Names(svc))
}

// P2: a cluster created after its endpoints were asked for still gets its
// explicit empty assignment, on a per-type EDS stream too.
func TestP2ClusterAppearsLater(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("other")...)
	c := conv.Typed(t, e.cc, eds, edge)
	c.Request(eds, "svc")
	c.ExpectNothing()
	e.commit(t, clusters("svc")...)
	r := c.ExpectResponse(conv.Names("svc"))
	cla, ok := r.Resource("svc").(*endpointv3.ClusterLoadAssignment)
	require.True(t, ok)
	assert.Empty(t, cla.GetEndpoints())
}

// D7: turning the wildcard on still announces what was deleted meanwhile.
func TestD7WildcardOnAnnouncesDeletions(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters("a", "b")...)
	require.NoError(t, err)
	d := stream.NewDelta(scope, edge, stream.Limits{})
	_, err = d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResourceNamesSubscribe: []string{"a", "b"}}, time.Now(), st.View())
	require.NoError(t, err)
	rs := d.Responses(st.View())
	require.Len(t, rs, 1)
	_, err = d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: rs[0].Nonce}, time.Now(), st.View())
	require.NoError(t, err)
	_, err = st.Commit(store.Delete(scope, cds, "a"))
	require.NoError(t, err)
	_, err = d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResourceNamesSubscribe: []string{"*"}}, time.Now(), st.View())
	require.NoError(t, err)
	rs = d.Responses(st.View())
	require.Len(t, rs, 1)
	assert.Contains(t, rs[0].Removed, "a")
}

// R15: clusters used by virtual hosts (VHDS) are kept too.
func TestR15VirtualHostsKeepClusters(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("a", "b"), store.Set(scope, xdstest.VirtualHost("r/vh", []string{"*"}, xdstest.RouteTo("/", "a"))))...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(protocol.TypeVirtualHost, "r/vh")
	c.ExpectResponse(conv.Updated("r/vh"))
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.VirtualHost("r/vh", []string{"*"}, xdstest.RouteTo("/", "c"))),
		store.Set(scope, xdstest.Cluster("c")), store.Delete(scope, cds, "a"))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("c"), conv.NoRemoved())
}

// D4: the delta legacy wildcard ends when the client names something.
func TestD4LegacyWildcardEndsWithAName(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a", "b")...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Send(&discoveryv3.DeltaDiscoveryRequest{Node: edge, TypeUrl: cds})
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(cds, "a")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster("b", xdstest.WithConnectTimeout(5*time.Second))))
	c.ExpectNothing()
}

const (
	globC1 = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a=1&b=2"
	globC2 = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c2?a=1&b=2"
	glob   = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/*?a=1&b=2"
)

// D6, X2: a member a glob still covers is sent again after its own name is
// unsubscribed.
func TestD6X2GlobStillCovers(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster(globC1)), store.Set(scope, xdstest.Cluster(globC2)))
	d := conv.DeltaADS(t, e.cc, edge)
	d.Subscribe(cds, glob, globC1)
	d.ExpectResponse(conv.Updated(globC1, globC2))
	d.ACK()
	d.Unsubscribe(cds, globC1)
	d.ExpectResponse(conv.Updated(globC1), conv.NoRemoved())
}

// D3, X2: a glob on reconnect sends only the members that differ.
func TestD3X2GlobReconnect(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster(globC1)), store.Set(scope, xdstest.Cluster(globC2)))
	v := e.st.View().Table(scope, cds)
	d := conv.DeltaADS(t, e.cc, edge)
	d.InitialVersions(cds, map[string]string{globC1: v.Get(globC1).Version, globC2: v.Get(globC2).Version}, glob)
	d.ExpectNothing()
}

// A stream may not request more type URLs than its limit.
func TestTooManyTypes(t *testing.T) {
	e := newEnv(t, func(o *stream.Options) { o.Limits.MaxTypes = 2 })
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse()
	c.Request(lds)
	c.ExpectResponse()
	c.Request(eds, "a")
	assert.Contains(t, c.ExpectError(3).Error(), "limit of 2")
}
