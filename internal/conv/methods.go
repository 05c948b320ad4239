package conv

import (
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	runtimeservice "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"

	"github.com/leanxds/leanxds/protocol"
)

// The aggregated (ADS) methods, which carry every type on one stream.
const (
	adsMethod      = discoveryv3.AggregatedDiscoveryService_StreamAggregatedResources_FullMethodName
	deltaADSMethod = discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResources_FullMethodName
)

// sotwMethod returns the per-type state-of-the-world method that serves typeURL.
// Every one of them exchanges DiscoveryRequest and DiscoveryResponse, so only the
// method name differs.
func sotwMethod(typeURL string) (method string, ok bool) {
	switch typeURL {
	case protocol.TypeListener:
		return listenerservice.ListenerDiscoveryService_StreamListeners_FullMethodName, true
	case protocol.TypeRoute:
		return routeservice.RouteDiscoveryService_StreamRoutes_FullMethodName, true
	case protocol.TypeScopedRoute:
		return routeservice.ScopedRoutesDiscoveryService_StreamScopedRoutes_FullMethodName, true
	case protocol.TypeCluster:
		return clusterservice.ClusterDiscoveryService_StreamClusters_FullMethodName, true
	case protocol.TypeEndpoint:
		return endpointservice.EndpointDiscoveryService_StreamEndpoints_FullMethodName, true
	case protocol.TypeSecret:
		return secretservice.SecretDiscoveryService_StreamSecrets_FullMethodName, true
	case protocol.TypeRuntime:
		return runtimeservice.RuntimeDiscoveryService_StreamRuntime_FullMethodName, true
	case protocol.TypeExtensionCfg:
		return extensionservice.ExtensionConfigDiscoveryService_StreamExtensionConfigs_FullMethodName, true
	}
	return "", false
}

// deltaMethod returns the per-type incremental method that serves typeURL. VHDS
// and LEDS exist only as incremental services.
func deltaMethod(typeURL string) (method string, ok bool) {
	switch typeURL {
	case protocol.TypeListener:
		return listenerservice.ListenerDiscoveryService_DeltaListeners_FullMethodName, true
	case protocol.TypeRoute:
		return routeservice.RouteDiscoveryService_DeltaRoutes_FullMethodName, true
	case protocol.TypeScopedRoute:
		return routeservice.ScopedRoutesDiscoveryService_DeltaScopedRoutes_FullMethodName, true
	case protocol.TypeVirtualHost:
		return routeservice.VirtualHostDiscoveryService_DeltaVirtualHosts_FullMethodName, true
	case protocol.TypeCluster:
		return clusterservice.ClusterDiscoveryService_DeltaClusters_FullMethodName, true
	case protocol.TypeEndpoint:
		return endpointservice.EndpointDiscoveryService_DeltaEndpoints_FullMethodName, true
	case protocol.TypeLbEndpoint:
		return endpointservice.LocalityEndpointDiscoveryService_DeltaLocalityEndpoints_FullMethodName, true
	case protocol.TypeSecret:
		return secretservice.SecretDiscoveryService_DeltaSecrets_FullMethodName, true
	case protocol.TypeRuntime:
		return runtimeservice.RuntimeDiscoveryService_DeltaRuntime_FullMethodName, true
	case protocol.TypeExtensionCfg:
		return extensionservice.ExtensionConfigDiscoveryService_DeltaExtensionConfigs_FullMethodName, true
	}
	return "", false
}
