package xdstest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	typeHCM        = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeRouter     = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	typeTCPProxy   = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	typeUpstream   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	typeDownstream = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)

func TestEveryBuilderIsValid(t *testing.T) {
	tests := []struct {
		name     string
		resource proto.Message
		// payloads are the typed_config Any payloads the resource must hold, in
		// the order the walk meets them; each one is validated too.
		payloads []string
	}{
		{"Cluster", Cluster("web"), nil},
		{"Cluster/options", Cluster("web",
			WithServiceName("web-eds"),
			WithConnectTimeout(250*time.Millisecond),
			WithLbPolicy(clusterv3.Cluster_LEAST_REQUEST),
			WithUpstreamTLS("web-client-cert"),
		), []string{typeUpstream}},
		{"StaticCluster", StaticCluster("static", "127.0.0.1:8080", "[::1]:8081"), nil},
		{"StaticCluster/empty", StaticCluster("static"), nil},
		{"Endpoints", Endpoints("web", "10.0.0.1:80", "10.0.0.2:80"), nil},
		{"Endpoints/empty", Endpoints("web"), nil},
		{"WeightedEndpoints", WeightedEndpoints("web",
			Locality{Region: "eu", Zone: "a", Weight: 3, Endpoints: []string{"10.0.0.1:80"}},
			Locality{Region: "eu", Zone: "b", Priority: 1, Endpoints: []string{"10.0.1.1:80", "10.0.1.2:80"}},
		), nil},
		{"Listener", Listener("http", 8080, "web-routes"), []string{typeHCM, typeRouter}},
		{"Listener/TLS", Listener("https", 8443, "web-routes", WithDownstreamTLS("server-cert")),
			[]string{typeHCM, typeRouter, typeDownstream}},
		{"APIListener", APIListener("web.example.com", "web-routes"), []string{typeHCM, typeRouter}},
		{"TCPListener", TCPListener("db", 5432, "postgres"), []string{typeTCPProxy}},
		{"Route", Route("web-routes",
			VirtualHost("web", []string{"web.example.com", "web"}, RouteTo("/api", "api"), RouteTo("/", "web")),
			VirtualHost("admin", []string{"admin.example.com"},
				WeightedRoute("/", map[string]uint32{"admin-blue": 90, "admin-green": 10})),
		), nil},
		{"SimpleRoute/none", SimpleRoute("r"), nil},
		{"SimpleRoute/one", SimpleRoute("r", "web"), nil},
		{"SimpleRoute/several", SimpleRoute("r", "web-a", "web-b", "web-c"), nil},
		{"Secret", Secret("server-cert"), nil},
		{"Runtime", Runtime("layer", map[string]any{
			"envoy.reloadable_features.example": true,
			"upstream.healthy_panic_threshold":  50,
			"nested":                            map[string]any{"list": []any{"a", 1.5, nil}},
		}), nil},
		{"Runtime/empty", Runtime("layer", nil), nil},
		{"ExtensionConfig", ExtensionConfig("router"), []string{typeRouter}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payloads := requireValid(t, tt.resource)
			assert.Equal(t, tt.payloads, payloads)
		})
	}
}

func TestCluster(t *testing.T) {
	c := Cluster("web")
	assert.Equal(t, "web", c.GetName())
	assert.Equal(t, clusterv3.Cluster_EDS, c.GetType())
	assert.Equal(t, clusterv3.Cluster_ROUND_ROBIN, c.GetLbPolicy())
	assert.Equal(t, time.Second, c.GetConnectTimeout().AsDuration())
	requireADS(t, c.GetEdsClusterConfig().GetEdsConfig())
	assert.Empty(t, c.GetEdsClusterConfig().GetServiceName(), "the EDS resource is named like the cluster")
	assert.Nil(t, c.GetTransportSocket())

	c = Cluster("web",
		WithServiceName("web-eds"),
		WithConnectTimeout(3*time.Second),
		WithLbPolicy(clusterv3.Cluster_RING_HASH),
		WithUpstreamTLS("client-cert"),
	)
	assert.Equal(t, "web-eds", c.GetEdsClusterConfig().GetServiceName())
	assert.Equal(t, 3*time.Second, c.GetConnectTimeout().AsDuration())
	assert.Equal(t, clusterv3.Cluster_RING_HASH, c.GetLbPolicy())
	assert.Equal(t, "envoy.transport_sockets.tls", c.GetTransportSocket().GetName())
	upstream := unpack[*tlsv3.UpstreamTlsContext](t, c.GetTransportSocket().GetTypedConfig())
	sds := upstream.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()
	require.Len(t, sds, 1)
	assert.Equal(t, "client-cert", sds[0].GetName())
	requireADS(t, sds[0].GetSdsConfig())
}

func TestStaticCluster(t *testing.T) {
	c := StaticCluster("static", "127.0.0.1:8080")
	assert.Equal(t, clusterv3.Cluster_STATIC, c.GetType())
	assert.Nil(t, c.GetEdsClusterConfig())
	assert.Equal(t, "static", c.GetLoadAssignment().GetClusterName())
	assert.Equal(t, []string{"127.0.0.1:8080"}, endpointAddresses(c.GetLoadAssignment().GetEndpoints()))
}

func TestEndpoints(t *testing.T) {
	cla := Endpoints("web", "10.0.0.1:80", "[2001:db8::1]:443", "backend.internal:9000")
	require.Len(t, cla.GetEndpoints(), 1)
	locality := cla.GetEndpoints()[0]
	assert.Equal(t, "web", cla.GetClusterName())
	assert.Equal(t, "r1", locality.GetLocality().GetRegion())
	assert.Equal(t, "z1", locality.GetLocality().GetZone())
	assert.Equal(t, uint32(1), locality.GetLoadBalancingWeight().GetValue(), "grpc-go ignores a locality without weight")
	assert.Equal(t, []string{"10.0.0.1:80", "[2001:db8::1]:443", "backend.internal:9000"},
		endpointAddresses(cla.GetEndpoints()))
	sa := locality.GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	assert.Equal(t, corev3.SocketAddress_TCP, sa.GetProtocol())
}

func TestEndpointsEmptyIsExplicit(t *testing.T) {
	cla := Endpoints("drained")
	require.NotNil(t, cla)
	assert.Equal(t, "drained", cla.GetClusterName())
	assert.Empty(t, cla.GetEndpoints())
	b, err := proto.Marshal(cla)
	require.NoError(t, err)
	assert.NotEmpty(t, b, "an empty assignment still names its cluster on the wire")
}

func TestEndpointsRejectsMalformedAddresses(t *testing.T) {
	for _, bad := range []string{"10.0.0.1", "10.0.0.1:http", "10.0.0.1:70000", ":"} {
		assert.Panics(t, func() { Endpoints("web", bad) }, bad)
	}
}

func TestWeightedEndpoints(t *testing.T) {
	cla := WeightedEndpoints("web",
		Locality{Region: "eu", Zone: "a", Weight: 3, Endpoints: []string{"10.0.0.1:80"}},
		Locality{Region: "us", Zone: "b", Priority: 1, Endpoints: []string{"10.0.1.1:80", "10.0.1.2:80"}},
	)
	require.Len(t, cla.GetEndpoints(), 2)
	first, second := cla.GetEndpoints()[0], cla.GetEndpoints()[1]
	assert.Equal(t, "eu", first.GetLocality().GetRegion())
	assert.Equal(t, uint32(3), first.GetLoadBalancingWeight().GetValue())
	assert.Equal(t, uint32(0), first.GetPriority())
	assert.Equal(t, "b", second.GetLocality().GetZone())
	assert.Equal(t, uint32(1), second.GetLoadBalancingWeight().GetValue(), "weight 0 stands for 1")
	assert.Equal(t, uint32(1), second.GetPriority())
	assert.Len(t, second.GetLbEndpoints(), 2)
}

func TestListener(t *testing.T) {
	l := Listener("http", 8080, "web-routes")
	sa := l.GetAddress().GetSocketAddress()
	assert.Equal(t, "0.0.0.0", sa.GetAddress())
	assert.Equal(t, uint32(8080), sa.GetPortValue())
	require.Len(t, l.GetFilterChains(), 1)
	chain := l.GetFilterChains()[0]
	assert.Nil(t, chain.GetTransportSocket())
	require.Len(t, chain.GetFilters(), 1)
	assert.Equal(t, "envoy.filters.network.http_connection_manager", chain.GetFilters()[0].GetName())
	hcm := unpack[*hcmv3.HttpConnectionManager](t, chain.GetFilters()[0].GetTypedConfig())
	assert.Equal(t, "http", hcm.GetStatPrefix())
	requireRDSOverADSAndRouterLast(t, hcm, "web-routes")

	l = Listener("https", 8443, "web-routes", WithDownstreamTLS("server-cert"))
	socket := l.GetFilterChains()[0].GetTransportSocket()
	assert.Equal(t, "envoy.transport_sockets.tls", socket.GetName())
	downstream := unpack[*tlsv3.DownstreamTlsContext](t, socket.GetTypedConfig())
	sds := downstream.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()
	require.Len(t, sds, 1)
	assert.Equal(t, "server-cert", sds[0].GetName())
	requireADS(t, sds[0].GetSdsConfig())
}

// TestAPIListenerForGRPC checks what grpc-go's xDS client requires of a client
// listener (xdsresource.processClientSideListener): an HCM api_listener, RDS from
// ads or self with a route name, uniquely named HTTP filters ending with a
// terminal one, and no xff or original-IP detection settings.
func TestAPIListenerForGRPC(t *testing.T) {
	l := APIListener("web.example.com:443", "web-routes")
	assert.Equal(t, "web.example.com:443", l.GetName())
	assert.Nil(t, l.GetAddress(), "a proxyless client listener has no address")
	assert.Empty(t, l.GetFilterChains())
	require.Equal(t, typeHCM, l.GetApiListener().GetApiListener().GetTypeUrl())
	hcm := unpack[*hcmv3.HttpConnectionManager](t, l.GetApiListener().GetApiListener())
	requireRDSOverADSAndRouterLast(t, hcm, "web-routes")
	assert.Zero(t, hcm.GetXffNumTrustedHops())
	assert.Empty(t, hcm.GetOriginalIpDetectionExtensions())
	seen := map[string]bool{}
	for _, f := range hcm.GetHttpFilters() {
		require.NotEmpty(t, f.GetName())
		require.False(t, seen[f.GetName()], "duplicate HTTP filter %q", f.GetName())
		seen[f.GetName()] = true
	}
}

func TestTCPListener(t *testing.T) {
	l := TCPListener("db", 5432, "postgres")
	assert.Equal(t, uint32(5432), l.GetAddress().GetSocketAddress().GetPortValue())
	require.Len(t, l.GetFilterChains(), 1)
	require.Len(t, l.GetFilterChains()[0].GetFilters(), 1)
	filter := l.GetFilterChains()[0].GetFilters()[0]
	assert.Equal(t, "envoy.filters.network.tcp_proxy", filter.GetName())
	proxy := unpack[*tcpproxyv3.TcpProxy](t, filter.GetTypedConfig())
	assert.Equal(t, "postgres", proxy.GetCluster())
	assert.Equal(t, "db", proxy.GetStatPrefix())
}

func TestRouteTo(t *testing.T) {
	r := RouteTo("/api", "api")
	assert.Equal(t, "/api", r.GetMatch().GetPrefix())
	assert.Equal(t, "api", r.GetRoute().GetCluster())
}

func TestWeightedRoute(t *testing.T) {
	weights := map[string]uint32{"web-c": 5, "web-a": 70, "web-b": 25, "web-d": 0}
	r := WeightedRoute("/", weights)
	assert.Equal(t, "/", r.GetMatch().GetPrefix())

	var names []string
	var total uint32
	for _, c := range r.GetRoute().GetWeightedClusters().GetClusters() {
		names = append(names, c.GetName())
		assert.Equal(t, weights[c.GetName()], c.GetWeight().GetValue(), c.GetName())
		total += c.GetWeight().GetValue()
	}
	assert.Equal(t, []string{"web-a", "web-b", "web-c", "web-d"}, names, "clusters are sorted by name")
	assert.Equal(t, uint32(100), total, "the clusters' weights add up to the weights given")
	assert.Nil(t, r.GetRoute().GetWeightedClusters().GetTotalWeight(), "total_weight is deprecated")

	// Map iteration order is random: building again must give the same bytes.
	want := marshalDeterministic(t, r)
	for range 20 {
		assert.Equal(t, want, marshalDeterministic(t, WeightedRoute("/", weights)))
	}
}

func TestSimpleRoute(t *testing.T) {
	rc := SimpleRoute("r")
	assert.Equal(t, "r", rc.GetName())
	require.Len(t, rc.GetVirtualHosts(), 1)
	vhost := rc.GetVirtualHosts()[0]
	assert.Equal(t, "*", vhost.GetName())
	assert.Equal(t, []string{"*"}, vhost.GetDomains())
	assert.Empty(t, vhost.GetRoutes())

	rc = SimpleRoute("r", "web")
	require.Len(t, rc.GetVirtualHosts()[0].GetRoutes(), 1)
	route := rc.GetVirtualHosts()[0].GetRoutes()[0]
	assert.Equal(t, "/", route.GetMatch().GetPrefix())
	assert.Equal(t, "web", route.GetRoute().GetCluster())

	rc = SimpleRoute("r", "web-b", "web-a")
	require.Len(t, rc.GetVirtualHosts()[0].GetRoutes(), 1)
	split := rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters()
	require.Len(t, split, 2)
	assert.Equal(t, "web-a", split[0].GetName())
	assert.Equal(t, "web-b", split[1].GetName())
	assert.Equal(t, split[0].GetWeight().GetValue(), split[1].GetWeight().GetValue(), "an even split")
}

func TestVirtualHostAndRoute(t *testing.T) {
	rc := Route("rc", VirtualHost("a", []string{"a.example.com"}), VirtualHost("b", []string{"b.example.com"}))
	assert.Equal(t, "rc", rc.GetName())
	require.Len(t, rc.GetVirtualHosts(), 2)
	assert.Equal(t, "b", rc.GetVirtualHosts()[1].GetName())
	assert.Equal(t, []string{"b.example.com"}, rc.GetVirtualHosts()[1].GetDomains())
}

func TestSecret(t *testing.T) {
	s := Secret("server-cert")
	assert.Equal(t, "server-cert", s.GetName())
	certPEM := s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
	keyPEM := s.GetTlsCertificate().GetPrivateKey().GetInlineBytes()
	_, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err, "the certificate and key go together")

	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	assert.NoError(t, cert.VerifyHostname("localhost"))
	assert.NoError(t, cert.VerifyHostname("127.0.0.1"))
	assert.True(t, time.Now().Before(cert.NotAfter))

	assert.Equal(t, certPEM, Secret("other").GetTlsCertificate().GetCertificateChain().GetInlineBytes(),
		"the certificate is generated once")
}

func TestRuntime(t *testing.T) {
	r := Runtime("layer", map[string]any{"feature": true, "percent": 50})
	assert.Equal(t, "layer", r.GetName())
	assert.True(t, r.GetLayer().GetFields()["feature"].GetBoolValue())
	assert.Equal(t, 50.0, r.GetLayer().GetFields()["percent"].GetNumberValue())
	assert.Panics(t, func() { Runtime("layer", map[string]any{"bad": struct{}{}}) })
}

func TestExtensionConfig(t *testing.T) {
	ec := ExtensionConfig("router")
	assert.Equal(t, "router", ec.GetName())
	unpack[*routerv3.Router](t, ec.GetTypedConfig())
}

func TestAny(t *testing.T) {
	a := Any(&routerv3.Router{})
	assert.Equal(t, typeRouter, a.GetTypeUrl())
	// A proto3 string must be valid UTF-8, so this message cannot be marshalled.
	assert.Panics(t, func() { Any(&corev3.Node{Id: "\xff"}) })
}

func TestBuildersReturnFreshResources(t *testing.T) {
	a, b := Listener("l", 80, "r"), Listener("l", 80, "r")
	require.True(t, proto.Equal(a, b))
	a.FilterChains[0].Filters[0].GetTypedConfig().Value = nil
	assert.NotNil(t, b.FilterChains[0].Filters[0].GetTypedConfig().Value, "builders share no sub-message")
}

// requireRDSOverADSAndRouterLast checks the HCM fetches routeName over ADS and
// ends its HTTP filters with the router, as both Envoy and grpc-go expect.
func requireRDSOverADSAndRouterLast(t *testing.T, hcm *hcmv3.HttpConnectionManager, routeName string) {
	t.Helper()
	rds := hcm.GetRds()
	require.NotNil(t, rds, "the HCM must use RDS")
	assert.Equal(t, routeName, rds.GetRouteConfigName())
	requireADS(t, rds.GetConfigSource())
	filters := hcm.GetHttpFilters()
	require.NotEmpty(t, filters)
	last := filters[len(filters)-1]
	assert.Equal(t, "envoy.filters.http.router", last.GetName())
	assert.Equal(t, typeRouter, last.GetTypedConfig().GetTypeUrl())
}

func requireADS(t *testing.T, src *corev3.ConfigSource) {
	t.Helper()
	require.NotNil(t, src.GetAds(), "config source must be ads, got %v", src)
	assert.Equal(t, corev3.ApiVersion_V3, src.GetResourceApiVersion())
}

// unpack unmarshals a into a new M, failing t if a holds another type.
func unpack[M proto.Message](t *testing.T, a *anypb.Any) M {
	t.Helper()
	m, err := a.UnmarshalNew()
	require.NoError(t, err)
	typed, ok := m.(M)
	require.True(t, ok, "Any holds %s", a.GetTypeUrl())
	return typed
}

func marshalDeterministic(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	require.NoError(t, err)
	return b
}

// endpointAddresses lists the "host:port" of every endpoint of localities, in order.
func endpointAddresses(localities []*endpointv3.LocalityLbEndpoints) []string {
	var addrs []string
	for _, l := range localities {
		for _, e := range l.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			addrs = append(addrs, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
		}
	}
	return addrs
}
