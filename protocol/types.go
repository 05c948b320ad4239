package protocol

import "slices"

// Type URLs of the v3 resource types leanxds serves.
const (
	TypeListener     = "type.googleapis.com/envoy.config.listener.v3.Listener"
	TypeRoute        = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	TypeScopedRoute  = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"
	TypeVirtualHost  = "type.googleapis.com/envoy.config.route.v3.VirtualHost"
	TypeCluster      = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	TypeEndpoint     = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	TypeLbEndpoint   = "type.googleapis.com/envoy.config.endpoint.v3.LbEndpoint"
	TypeSecret       = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	TypeRuntime      = "type.googleapis.com/envoy.service.runtime.v3.Runtime"
	TypeExtensionCfg = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
)

// TypeInfo is what the protocol says about one resource type.
type TypeInfo struct {
	// URL is the type URL clients put in DiscoveryRequest.type_url.
	URL string
	// Short is the service's conventional name ("CDS", "EDS", ...), for logs and metrics.
	Short string
	// FullState is true when every SotW response must carry every subscribed
	// resource of the type, and a resource left out is deleted by the client (S1).
	// It is false when a response may carry only what changed (S2).
	FullState bool
	// Order is the type's place in the push order (R15): lower goes first.
	Order int
}

// types lists every served type in push order (R15): runtime and secrets first,
// because everything else may use them; then clusters before their endpoints,
// extension configs before the listeners whose filters use them, listeners before
// routes, and routes before the scopes and virtual hosts that refine them.
var types = []TypeInfo{
	{URL: TypeRuntime, Short: "RTDS"},
	{URL: TypeSecret, Short: "SDS"},
	{URL: TypeCluster, Short: "CDS", FullState: true},
	{URL: TypeEndpoint, Short: "EDS"},
	{URL: TypeLbEndpoint, Short: "LEDS"},
	{URL: TypeExtensionCfg, Short: "ECDS"},
	{URL: TypeListener, Short: "LDS", FullState: true},
	{URL: TypeRoute, Short: "RDS"},
	// Envoy's SRDS subscription removes every scope a SotW update leaves out, so
	// SRDS responses carry the full state like LDS and CDS (S1 as Envoy applies it).
	{URL: TypeScopedRoute, Short: "SRDS", FullState: true},
	{URL: TypeVirtualHost, Short: "VHDS"},
}

var byURL = func() map[string]TypeInfo {
	m := make(map[string]TypeInfo, len(types))
	for i, t := range types {
		t.Order = i
		types[i] = t
		m[t.URL] = t
	}
	return m
}()

// Lookup returns what is known of a type URL; ok is false for a type leanxds does
// not serve.
func Lookup(typeURL string) (info TypeInfo, ok bool) {
	info, ok = byURL[typeURL]
	return info, ok
}

// Types returns every served type in push order (R15). The slice is a copy.
func Types() []TypeInfo { return slices.Clone(types) }

// FullState reports whether SotW responses of typeURL carry the full state (S1).
func FullState(typeURL string) bool { return byURL[typeURL].FullState }

// Short returns the conventional short name of a type URL ("CDS"), or the URL
// itself for a type leanxds does not serve.
func Short(typeURL string) string {
	if t, ok := byURL[typeURL]; ok {
		return t.Short
	}
	return typeURL
}

// PushOrder compares two type URLs by push order (R15), for slices.SortFunc. Types
// leanxds does not serve sort last, by URL.
func PushOrder(a, b string) int {
	ta, oka := byURL[a]
	tb, okb := byURL[b]
	switch {
	case oka && okb:
		return ta.Order - tb.Order
	case oka:
		return -1
	case okb:
		return 1
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
