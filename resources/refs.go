package resources

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Refs are the names of the resources of other types that one resource makes a
// client subscribe to or route to. The stream pushes what a resource refers to
// before the resource itself and removes it only after (R15), and answers the
// subscriptions a new Listener or Cluster triggers (R16).
type Refs struct {
	// Routes are RouteConfiguration names (RDS): a Listener's HCM rds, the
	// route_configuration_name of its inline scoped route configurations, or a
	// ScopedRouteConfiguration's route_configuration_name.
	Routes []string
	// ScopedRoutes are the names of the ScopedRouteConfiguration sets (SRDS) a
	// Listener's HCM scoped_routes fetch with scoped_rds.
	ScopedRoutes []string
	// Clusters are the cluster names traffic is sent to: the route.cluster,
	// weighted_clusters and request mirrors of a RouteConfiguration or VirtualHost,
	// a Listener's tcp_proxy or inline HCM route_config, an aggregate Cluster's
	// clusters.
	Clusters []string
	// Endpoints are the EDS service names of a Cluster of type EDS:
	// eds_cluster_config.service_name, or the cluster's name when that is empty.
	Endpoints []string
	// Secrets are the SDS secret names in TLS contexts: a Listener's
	// DownstreamTlsContext in its filter chains' transport sockets, a Cluster's
	// UpstreamTlsContext in transport_socket and transport_socket_matches. Only
	// SdsSecretConfigs with an sds_config count; one without names a static secret
	// of the client's bootstrap, which the client never asks the server for.
	Secrets []string
	// ExtensionConfigs are ECDS names: the names of the HCM http_filters, network
	// filters and listener filters (and a Cluster's upstream filters) whose config
	// comes from config_discovery.
	ExtensionConfigs []string
}

// Empty reports whether r holds no reference at all.
func (r Refs) Empty() bool {
	return len(r.Routes) == 0 && len(r.ScopedRoutes) == 0 && len(r.Clusters) == 0 &&
		len(r.Endpoints) == 0 && len(r.Secrets) == 0 && len(r.ExtensionConfigs) == 0
}

// References returns the names m refers to, each list sorted and without
// duplicates, nil when empty. typeURL must be m's type URL; a message of another
// type refers to nothing. Extension configs are read where they decide what a
// client subscribes to: the HttpConnectionManager and TcpProxy network filters
// (also in an api_listener, as gRPC clients use it), TLS transport sockets and
// aggregate cluster configs. An undecodable payload refers to nothing; Validate
// reports it.
func References(typeURL string, m proto.Message) Refs {
	return references(typeURL, m, false)
}

// ServedReferences is References without the names a client fetches from a
// source other than the server that sent m: those whose config source (an
// HCM's rds or scoped_rds, a cluster's eds_config, an sds_config, a
// config_discovery) is a file or an api_config_source rather than ads or self
// (fromServer). What is left is what that server must hold for m to work.
func ServedReferences(typeURL string, m proto.Message) Refs {
	return references(typeURL, m, true)
}

func references(typeURL string, m proto.Message, servedOnly bool) Refs {
	if got, err := TypeURLOf(m); err != nil || got != typeURL {
		return Refs{}
	}
	r := refWalker{servedOnly: servedOnly}
	switch res := m.(type) {
	case *listenerv3.Listener:
		r.listener(res)
	case *routev3.RouteConfiguration:
		r.routeConfig(res)
	case *routev3.ScopedRouteConfiguration:
		r.scopedRoute(res, nil)
	case *routev3.VirtualHost:
		r.virtualHost(res)
	case *clusterv3.Cluster:
		r.cluster(res)
	}
	r.normalize()
	return r.Refs
}

// refWalker collects the references of one resource.
type refWalker struct {
	Refs
	// servedOnly leaves out the names fetched from another source than the
	// server that sent the resource (ServedReferences).
	servedOnly bool
}

// from reports whether a name fetched from config source cs is collected.
func (r *refWalker) from(cs *corev3.ConfigSource) bool {
	return !r.servedOnly || fromServer(cs)
}

// fromServer reports whether a client fetches what cs names from the server
// that sent the resource holding cs: over ADS (ads), or from that same source
// (self). A path or path_config_source is a file on the client; an
// api_config_source names servers of its own, which may be another control
// plane. An unset source counts as the server's: it is the only source the
// resource names (a ScopedRouteConfiguration's routes are fetched with the
// listener's rds_config_source, and a client rejects an EDS cluster without
// eds_config).
func fromServer(cs *corev3.ConfigSource) bool {
	switch cs.GetConfigSourceSpecifier().(type) {
	case nil, *corev3.ConfigSource_Ads, *corev3.ConfigSource_Self:
		return true
	}
	return false
}

func (r *refWalker) listener(l *listenerv3.Listener) {
	for _, lf := range l.GetListenerFilters() {
		r.extensionConfig(lf.GetName(), lf.GetConfigDiscovery())
	}
	for _, fc := range l.GetFilterChains() {
		r.filterChain(fc)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		r.filterChain(fc)
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		r.networkFilter(a)
	}
}

func (r *refWalker) filterChain(fc *listenerv3.FilterChain) {
	for _, f := range fc.GetFilters() {
		if cd := f.GetConfigDiscovery(); cd != nil {
			r.extensionConfig(f.GetName(), cd)
			continue
		}
		r.networkFilter(f.GetTypedConfig())
	}
	r.transportSocket(fc.GetTransportSocket())
}

// networkFilter reads the network filters whose config names other resources.
func (r *refWalker) networkFilter(a *anypb.Any) {
	var hcm hcmv3.HttpConnectionManager
	if unpack(a, &hcm) {
		r.httpConnectionManager(&hcm)
		return
	}
	var tcp tcpproxyv3.TcpProxy
	if unpack(a, &tcp) {
		if c := tcp.GetCluster(); c != "" {
			r.Clusters = append(r.Clusters, c)
		}
		for _, wc := range tcp.GetWeightedClusters().GetClusters() {
			r.Clusters = append(r.Clusters, wc.GetName())
		}
	}
}

func (r *refWalker) httpConnectionManager(hcm *hcmv3.HttpConnectionManager) {
	if rds := hcm.GetRds(); rds != nil && r.from(rds.GetConfigSource()) {
		r.Routes = append(r.Routes, rds.GetRouteConfigName())
	}
	if rc := hcm.GetRouteConfig(); rc != nil {
		r.routeConfig(rc)
	}
	if sr := hcm.GetScopedRoutes(); sr != nil {
		// With scoped_rds the client fetches the set by SRDS; with an inline list
		// only the route configurations the scopes name are fetched (by RDS).
		if srds := sr.GetScopedRds(); srds != nil && r.from(srds.GetScopedRdsConfigSource()) {
			r.ScopedRoutes = append(r.ScopedRoutes, sr.GetName())
		}
		for _, s := range sr.GetScopedRouteConfigurationsList().GetScopedRouteConfigurations() {
			r.scopedRoute(s, sr.GetRdsConfigSource())
		}
	}
	for _, f := range hcm.GetHttpFilters() {
		r.extensionConfig(f.GetName(), f.GetConfigDiscovery())
	}
}

// scopedRoute reads a scope, whose route configuration is fetched from
// rdsSource: the HCM's rds_config_source, or nil for a ScopedRouteConfiguration
// resource (its listener is not known here).
func (r *refWalker) scopedRoute(s *routev3.ScopedRouteConfiguration, rdsSource *corev3.ConfigSource) {
	if n := s.GetRouteConfigurationName(); n != "" && r.from(rdsSource) {
		r.Routes = append(r.Routes, n)
	}
	if rc := s.GetRouteConfiguration(); rc != nil {
		r.routeConfig(rc)
	}
}

func (r *refWalker) routeConfig(rc *routev3.RouteConfiguration) {
	for _, vh := range rc.GetVirtualHosts() {
		r.virtualHost(vh)
	}
}

func (r *refWalker) virtualHost(vh *routev3.VirtualHost) {
	for _, mp := range vh.GetRequestMirrorPolicies() {
		r.Clusters = append(r.Clusters, mp.GetCluster())
	}
	for _, rt := range vh.GetRoutes() {
		a := rt.GetRoute()
		if a == nil {
			continue
		}
		r.Clusters = append(r.Clusters, a.GetCluster())
		for _, wc := range a.GetWeightedClusters().GetClusters() {
			r.Clusters = append(r.Clusters, wc.GetName())
		}
		for _, mp := range a.GetRequestMirrorPolicies() {
			r.Clusters = append(r.Clusters, mp.GetCluster())
		}
	}
}

func (r *refWalker) cluster(c *clusterv3.Cluster) {
	if c.GetType() == clusterv3.Cluster_EDS && r.from(c.GetEdsClusterConfig().GetEdsConfig()) {
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		r.Endpoints = append(r.Endpoints, name)
	}
	var agg aggregatev3.ClusterConfig
	if unpack(c.GetClusterType().GetTypedConfig(), &agg) {
		r.Clusters = append(r.Clusters, agg.GetClusters()...)
	}
	for _, f := range c.GetFilters() {
		r.extensionConfig(f.GetName(), f.GetConfigDiscovery())
	}
	r.transportSocket(c.GetTransportSocket())
	for _, m := range c.GetTransportSocketMatches() {
		r.transportSocket(m.GetTransportSocket())
	}
}

// transportSocket reads the SDS secrets of a TLS transport socket, on either side.
func (r *refWalker) transportSocket(ts *corev3.TransportSocket) {
	a := ts.GetTypedConfig()
	var down tlsv3.DownstreamTlsContext
	if unpack(a, &down) {
		r.commonTLS(down.GetCommonTlsContext())
		r.sdsSecret(down.GetSessionTicketKeysSdsSecretConfig())
		return
	}
	var up tlsv3.UpstreamTlsContext
	if unpack(a, &up) {
		r.commonTLS(up.GetCommonTlsContext())
	}
}

func (r *refWalker) commonTLS(c *tlsv3.CommonTlsContext) {
	for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
		r.sdsSecret(s)
	}
	r.sdsSecret(c.GetValidationContextSdsSecretConfig())
	r.sdsSecret(c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
}

func (r *refWalker) sdsSecret(s *tlsv3.SdsSecretConfig) {
	if s.GetSdsConfig() != nil && r.from(s.GetSdsConfig()) {
		r.Secrets = append(r.Secrets, s.GetName())
	}
}

// extensionConfig reads a filter whose config comes from config discovery
// (ECDS), if cd is set.
func (r *refWalker) extensionConfig(name string, cd *corev3.ExtensionConfigSource) {
	if cd != nil && r.from(cd.GetConfigSource()) {
		r.ExtensionConfigs = append(r.ExtensionConfigs, name)
	}
}

// unpack decodes a into m when a holds m's type.
func unpack(a *anypb.Any, m proto.Message) bool {
	if a == nil || !a.MessageIs(m) {
		return false
	}
	return a.UnmarshalTo(m) == nil
}

func (r *Refs) normalize() {
	for _, l := range []*[]string{&r.Routes, &r.ScopedRoutes, &r.Clusters, &r.Endpoints, &r.Secrets, &r.ExtensionConfigs} {
		*l = sortedNames(*l)
	}
}

// sortedNames sorts names, drops duplicates and empty names (a route to a
// cluster_header has no cluster name), and returns nil when none is left.
func sortedNames(names []string) []string {
	names = slices.DeleteFunc(names, func(s string) bool { return s == "" })
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	return slices.Compact(names)
}
