package xdstest

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// Extension names Envoy gives the filters the fixtures use.
const (
	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName = "envoy.filters.network.tcp_proxy"
	routerFilterName   = "envoy.filters.http.router"
)

// ListenerOption changes a listener built by Listener.
type ListenerOption func(*listenerv3.Listener)

// Listener returns a listener on 0.0.0.0:port with one filter chain holding an
// HTTP connection manager that fetches the route configuration routeName over
// ADS and ends with the router filter.
func Listener(name string, port uint32, routeName string, opts ...ListenerOption) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:    name,
		Address: address("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       hcmFilterName,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: Any(httpConnectionManager(name, routeName))},
			}},
		}},
	}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// WithDownstreamTLS terminates TLS on every filter chain of the listener, with the
// server certificate of the SDS secret secretName, fetched over ADS.
func WithDownstreamTLS(secretName string) ListenerOption {
	return func(l *listenerv3.Listener) {
		for _, fc := range l.FilterChains {
			fc.TransportSocket = downstreamTLS(secretName)
		}
	}
}

// APIListener returns a listener as a proxyless gRPC client asks for it: no
// address, an api_listener holding an HTTP connection manager whose route
// configuration routeName comes over ADS and whose last (terminal) HTTP filter is
// the router. grpc-go NACKs an RDS config source other than ads or self, and a
// filter chain that does not end with a terminal filter.
func APIListener(name, routeName string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: Any(httpConnectionManager(name, routeName))},
	}
}

// TCPListener returns a listener on 0.0.0.0:port that proxies every TCP
// connection to cluster.
func TCPListener(name string, port uint32, cluster string) *listenerv3.Listener {
	proxy := &tcpproxyv3.TcpProxy{
		StatPrefix:       name,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: address("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       tcpProxyFilterName,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: Any(proxy)},
			}},
		}},
	}
}

// httpConnectionManager is the HCM of Listener and APIListener: RDS over ADS and
// the router as its only, terminal, HTTP filter.
func httpConnectionManager(statPrefix, routeName string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       routerFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: Any(&routerv3.Router{})},
		}},
	}
}

// ExtensionConfig returns a TypedExtensionConfig named name holding a router
// filter configuration, as served by ECDS.
func ExtensionConfig(name string) *corev3.TypedExtensionConfig {
	return &corev3.TypedExtensionConfig{Name: name, TypedConfig: Any(&routerv3.Router{})}
}
