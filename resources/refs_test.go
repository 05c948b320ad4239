package resources

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/stretchr/testify/assert"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/leanxds/leanxds/protocol"
)

func TestReferencesListenerRDS(t *testing.T) {
	hcm := rdsHCM(t, "main")
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{{
		Name:       "authz",
		ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{ConfigSource: ads()}},
	}}, hcm.HttpFilters...)
	l := hcmListener(t, "edge", hcm)
	// The same routes again in a second chain: listed once.
	l.FilterChains = append(l.FilterChains, hcmListener(t, "edge", rdsHCM(t, "main")).FilterChains...)
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       "inspector",
		ConfigType: &listenerv3.ListenerFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{ConfigSource: ads()}},
	}}

	assert.Equal(t, Refs{
		Routes:           []string{"main"},
		ExtensionConfigs: []string{"authz", "inspector"},
	}, References(protocol.TypeListener, l))
}

func TestReferencesAPIListener(t *testing.T) {
	// gRPC clients get their HCM in api_listener, with no filter chain.
	l := &listenerv3.Listener{
		Name:        "svc.example.com:443",
		ApiListener: &listenerv3.ApiListener{ApiListener: toAny(t, rdsHCM(t, "svc-routes"))},
	}
	assert.Equal(t, Refs{Routes: []string{"svc-routes"}}, References(protocol.TypeListener, l))
}

func TestReferencesInlineRouteConfig(t *testing.T) {
	hcm := rdsHCM(t, "")
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		Name:         "inline",
		VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("web")}}},
	}}
	assert.Equal(t, Refs{Clusters: []string{"web"}}, References(protocol.TypeListener, hcmListener(t, "edge", hcm)))
}

func TestReferencesScopedRoutes(t *testing.T) {
	scopedRDS := rdsHCM(t, "")
	scopedRDS.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name:            "tenant-scopes",
		RdsConfigSource: ads(),
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{ScopedRdsConfigSource: ads()}},
	}}
	assert.Equal(t, Refs{ScopedRoutes: []string{"tenant-scopes"}}, References(protocol.TypeListener, hcmListener(t, "edge", scopedRDS)))

	// Inline scopes are not fetched, but the route configurations they name are.
	inline := rdsHCM(t, "")
	inline.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name:            "inline-scopes",
		RdsConfigSource: ads(),
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRouteConfigurationsList{ScopedRouteConfigurationsList: &hcmv3.ScopedRouteConfigurationsList{
			ScopedRouteConfigurations: []*routev3.ScopedRouteConfiguration{
				{Name: "a", RouteConfigurationName: "routes-b"},
				{Name: "b", RouteConfigurationName: "routes-a"},
			},
		}},
	}}
	assert.Equal(t, Refs{Routes: []string{"routes-a", "routes-b"}}, References(protocol.TypeListener, hcmListener(t, "edge", inline)))
}

func TestReferencesTCPProxy(t *testing.T) {
	single := listener("db", networkFilter(t, "envoy.filters.network.tcp_proxy", &tcpproxyv3.TcpProxy{
		StatPrefix:       "db",
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "postgres"},
	}))
	assert.Equal(t, Refs{Clusters: []string{"postgres"}}, References(protocol.TypeListener, single))

	weighted := listener("db", networkFilter(t, "envoy.filters.network.tcp_proxy", &tcpproxyv3.TcpProxy{
		StatPrefix: "db",
		ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{
			Clusters: []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "pg-b", Weight: 1}, {Name: "pg-a", Weight: 1}},
		}},
	}))
	assert.Equal(t, Refs{Clusters: []string{"pg-a", "pg-b"}}, References(protocol.TypeListener, weighted))
}

func TestReferencesTLSListener(t *testing.T) {
	tls := &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret("cert-rsa"), sdsSecret("cert-ecdsa")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
					ValidationContextSdsSecretConfig: sdsSecret("client-ca"),
				},
			},
		},
		SessionTicketKeysType: &tlsv3.DownstreamTlsContext_SessionTicketKeysSdsSecretConfig{
			// No sds_config: a static secret from the bootstrap, never asked for.
			SessionTicketKeysSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "static-ticket-keys"},
		},
	}
	l := hcmListener(t, "edge", rdsHCM(t, "main"))
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(t, tls)},
	}
	l.DefaultFilterChain = &listenerv3.FilterChain{TransportSocket: &corev3.TransportSocket{
		Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(t, &tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsSecret("default-ca")},
			},
			SessionTicketKeysType: &tlsv3.DownstreamTlsContext_SessionTicketKeysSdsSecretConfig{
				SessionTicketKeysSdsSecretConfig: sdsSecret("ticket-keys"),
			},
		})},
	}}

	assert.Equal(t, Refs{
		Routes:  []string{"main"},
		Secrets: []string{"cert-ecdsa", "cert-rsa", "client-ca", "default-ca", "ticket-keys"},
	}, References(protocol.TypeListener, l))
}

func TestReferencesRouteConfiguration(t *testing.T) {
	weighted := &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: "api-v2", Weight: wrapperspb.UInt32(10)},
					{Name: "api-v1", Weight: wrapperspb.UInt32(90)},
				},
			}},
			RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}},
		}},
	}
	redirect := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/old"}},
		Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{}},
	}
	rc := &routev3.RouteConfiguration{Name: "main", VirtualHosts: []*routev3.VirtualHost{
		{Name: "www", Domains: []string{"www"}, Routes: []*routev3.Route{weighted, redirect, routeTo("web")}},
		{Name: "static", Domains: []string{"static"}, Routes: []*routev3.Route{routeTo("web")}},
	}}
	assert.Equal(t, Refs{Clusters: []string{"api-v1", "api-v2", "shadow", "web"}}, References(protocol.TypeRoute, rc))

	vh := &routev3.VirtualHost{Name: "main/www", Domains: []string{"www"}, Routes: []*routev3.Route{routeTo("web")}}
	assert.Equal(t, Refs{Clusters: []string{"web"}}, References(protocol.TypeVirtualHost, vh))
}

func TestReferencesScopedRouteConfiguration(t *testing.T) {
	s := &routev3.ScopedRouteConfiguration{Name: "tenant-a", RouteConfigurationName: "routes-a"}
	assert.Equal(t, Refs{Routes: []string{"routes-a"}}, References(protocol.TypeScopedRoute, s))
}

func TestReferencesClusters(t *testing.T) {
	assert.Equal(t, Refs{Endpoints: []string{"web-eds"}}, References(protocol.TypeCluster, edsCluster("web", "web-eds")))
	assert.Equal(t, Refs{Endpoints: []string{"web"}}, References(protocol.TypeCluster, edsCluster("web", "")),
		"without service_name, EDS is asked for the cluster's name")

	static := staticCluster("db")
	r := References(protocol.TypeCluster, static)
	assert.True(t, r.Empty())
	assert.Nil(t, r.Endpoints)

	agg := &clusterv3.Cluster{Name: "failover", ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
		Name:        "envoy.clusters.aggregate",
		TypedConfig: toAny(t, &aggregatev3.ClusterConfig{Clusters: []string{"primary", "secondary"}}),
	}}}
	assert.Equal(t, Refs{Clusters: []string{"primary", "secondary"}}, References(protocol.TypeCluster, agg))
}

func TestReferencesClusterTLS(t *testing.T) {
	upstream := func(secret string) *corev3.TransportSocket {
		return &corev3.TransportSocket{
			Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(t, &tlsv3.UpstreamTlsContext{
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(secret)},
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
						ValidationContextSdsSecretConfig: sdsSecret("upstream-ca"),
					},
				},
			})},
		}
	}
	c := edsCluster("web", "")
	c.TransportSocket = upstream("client-cert")
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{{Name: "mtls-v2", TransportSocket: upstream("client-cert-v2")}}

	assert.Equal(t, Refs{
		Endpoints: []string{"web"},
		Secrets:   []string{"client-cert", "client-cert-v2", "upstream-ca"},
	}, References(protocol.TypeCluster, c))
}

func TestReferencesOfOtherTypes(t *testing.T) {
	assert.True(t, References(protocol.TypeSecret, &tlsv3.Secret{Name: "cert"}).Empty())
	assert.True(t, References(protocol.TypeListener, edsCluster("web", "")).Empty(),
		"a message of another type than typeURL refers to nothing")
	assert.True(t, References(protocol.TypeListener, nil).Empty())
	assert.False(t, Refs{Secrets: []string{"x"}}.Empty())
}

// ServedReferences leaves out what a client fetches from another source than
// the server: a file, or the servers of an api_config_source. ads, self and an
// unset source are the server's.
func TestServedReferences(t *testing.T) {
	file := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{
		PathConfigSource: &corev3.PathConfigSource{Path: "/etc/envoy/sds.yaml"},
	}}
	other := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
		ApiType: corev3.ApiConfigSource_GRPC,
		GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "other-control-plane"},
		}}},
	}}}
	self := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Self{Self: &corev3.SelfConfigSource{}}}

	fromFile := edsCluster("from-file", "")
	fromFile.EdsClusterConfig.EdsConfig = file
	fromOther := edsCluster("from-other", "")
	fromOther.EdsClusterConfig.EdsConfig = other
	fromSelf := edsCluster("from-self", "")
	fromSelf.EdsClusterConfig.EdsConfig = self
	unset := edsCluster("unset", "")
	unset.EdsClusterConfig.EdsConfig = nil
	for _, c := range []*clusterv3.Cluster{fromFile, fromOther} {
		assert.Equal(t, Refs{Endpoints: []string{c.Name}}, References(protocol.TypeCluster, c))
		assert.True(t, ServedReferences(protocol.TypeCluster, c).Empty(), c.Name)
	}
	assert.Equal(t, Refs{Endpoints: []string{"web"}}, ServedReferences(protocol.TypeCluster, edsCluster("web", "")))
	assert.Equal(t, Refs{Endpoints: []string{"from-self"}}, ServedReferences(protocol.TypeCluster, fromSelf))
	assert.Equal(t, Refs{Endpoints: []string{"unset"}}, ServedReferences(protocol.TypeCluster, unset))

	// A listener whose routes come from a file, whose certificate comes from a
	// file, and whose filter config comes from another server, beside one of each
	// from the server.
	hcm := rdsHCM(t, "routes-from-file")
	hcm.GetRds().ConfigSource = file
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{
		{Name: "authz-elsewhere", ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{ConfigSource: other}}},
		{Name: "authz", ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{ConfigSource: ads()}}},
	}, hcm.HttpFilters...)
	l := hcmListener(t, "edge", hcm)
	l.FilterChains = append(l.FilterChains, hcmListener(t, "edge", rdsHCM(t, "main")).FilterChains...)
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{
		Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(t, &tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "cert-from-file", SdsConfig: file}, sdsSecret("cert")},
			},
		})},
	}
	assert.Equal(t, Refs{
		Routes:           []string{"main", "routes-from-file"},
		Secrets:          []string{"cert", "cert-from-file"},
		ExtensionConfigs: []string{"authz", "authz-elsewhere"},
	}, References(protocol.TypeListener, l))
	assert.Equal(t, Refs{
		Routes:           []string{"main"},
		Secrets:          []string{"cert"},
		ExtensionConfigs: []string{"authz"},
	}, ServedReferences(protocol.TypeListener, l))

	// Scoped routes: the scopes fetched from elsewhere, and the route
	// configurations of inline scopes fetched from a file.
	scoped := rdsHCM(t, "")
	scoped.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name:            "tenant-scopes",
		RdsConfigSource: ads(),
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{ScopedRdsConfigSource: other}},
	}}
	assert.True(t, ServedReferences(protocol.TypeListener, hcmListener(t, "edge", scoped)).Empty())
	inline := rdsHCM(t, "")
	inline.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name:            "inline-scopes",
		RdsConfigSource: file,
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRouteConfigurationsList{ScopedRouteConfigurationsList: &hcmv3.ScopedRouteConfigurationsList{
			ScopedRouteConfigurations: []*routev3.ScopedRouteConfiguration{{Name: "a", RouteConfigurationName: "routes-a"}},
		}},
	}}
	assert.Equal(t, Refs{Routes: []string{"routes-a"}}, References(protocol.TypeListener, hcmListener(t, "edge", inline)))
	assert.True(t, ServedReferences(protocol.TypeListener, hcmListener(t, "edge", inline)).Empty())
}

// ReferencesAndServed gives both answers from one walk; when no name comes
// from elsewhere they are the same lists.
func TestReferencesAndServed(t *testing.T) {
	file := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{
		PathConfigSource: &corev3.PathConfigSource{Path: "/etc/envoy/eds.yaml"},
	}}
	fromFile := edsCluster("from-file", "")
	fromFile.EdsClusterConfig.EdsConfig = file
	all, served := ReferencesAndServed(protocol.TypeCluster, fromFile)
	assert.Equal(t, References(protocol.TypeCluster, fromFile), all)
	assert.Equal(t, Refs{Endpoints: []string{"from-file"}}, all)
	assert.True(t, served.Empty())

	all, served = ReferencesAndServed(protocol.TypeCluster, edsCluster("web", ""))
	assert.Equal(t, Refs{Endpoints: []string{"web"}}, all)
	assert.Equal(t, all, served)
	assert.Same(t, &all.Endpoints[0], &served.Endpoints[0], "equal answers share their lists")
}

// ByType yields the non-empty lists with the type each names, in a fixed order.
func TestRefsByType(t *testing.T) {
	r := Refs{Routes: []string{"r"}, Clusters: []string{"a", "b"}, Secrets: []string{"s"}, ExtensionConfigs: []string{"x"}}
	var got []string
	for typeURL, names := range r.ByType() {
		got = append(got, protocol.Short(typeURL)+" "+strings.Join(names, ","))
	}
	assert.Equal(t, []string{"RDS r", "CDS a,b", "SDS s", "ECDS x"}, got)
	for range (Refs{}).ByType() {
		t.Fatal("an empty Refs yields nothing")
	}
}
