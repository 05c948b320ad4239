package resources

import (
	"iter"
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

	"github.com/leanxds/leanxds/protocol"
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
	all, _ := ReferencesAndServed(typeURL, m)
	return all
}

// ServedReferences is References without the names a client fetches from a
// source other than the server that sent m: those whose config source (an
// HCM's rds or scoped_rds, a cluster's eds_config, an sds_config, a
// config_discovery) is a file or an api_config_source rather than ads or self
// (fromServer). What is left is what that server must hold for m to work.
func ServedReferences(typeURL string, m proto.Message) Refs {
	_, served := ReferencesAndServed(typeURL, m)
	return served
}

// ReferencesAndServed returns both References and ServedReferences of m, from
// one walk of the message: the store computes them once, when a resource is
// committed. When the two are equal (no name comes from another source, the
// common case) they share their lists.
func ReferencesAndServed(typeURL string, m proto.Message) (all, served Refs) {
	if got, err := TypeURLOf(m); err != nil || got != typeURL {
		return Refs{}, Refs{}
	}
	var r refWalker
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
	all = r.all.normalized()
	if !r.elsewhere {
		return all, all
	}
	return all, r.served.normalized()
}

// refWalker collects the references of one resource, all of them and those
// the server that sent the resource must hold, in one walk.
type refWalker struct {
	all, served Refs
	// elsewhere is set once a name fetched from another source is seen: served
	// then differs from all.
	elsewhere bool
}

// add collects name into the list of all references that field selects and,
// if the client fetches it from this server (fromServer(cs) or an unset
// source), into the served list too.
func (r *refWalker) add(field func(*Refs) *[]string, served bool, names ...string) {
	a := field(&r.all)
	*a = append(*a, names...)
	if !served {
		r.elsewhere = true
		return
	}
	s := field(&r.served)
	*s = append(*s, names...)
}

func routes(r *Refs) *[]string           { return &r.Routes }
func scopedRoutes(r *Refs) *[]string     { return &r.ScopedRoutes }
func clusters(r *Refs) *[]string         { return &r.Clusters }
func endpoints(r *Refs) *[]string        { return &r.Endpoints }
func secrets(r *Refs) *[]string          { return &r.Secrets }
func extensionConfigs(r *Refs) *[]string { return &r.ExtensionConfigs }

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
			r.add(clusters, true, c)
		}
		for _, wc := range tcp.GetWeightedClusters().GetClusters() {
			r.add(clusters, true, wc.GetName())
		}
	}
}

func (r *refWalker) httpConnectionManager(hcm *hcmv3.HttpConnectionManager) {
	if rds := hcm.GetRds(); rds != nil {
		r.add(routes, fromServer(rds.GetConfigSource()), rds.GetRouteConfigName())
	}
	if rc := hcm.GetRouteConfig(); rc != nil {
		r.routeConfig(rc)
	}
	if sr := hcm.GetScopedRoutes(); sr != nil {
		// With scoped_rds the client fetches the set by SRDS; with an inline list
		// only the route configurations the scopes name are fetched (by RDS).
		if srds := sr.GetScopedRds(); srds != nil {
			r.add(scopedRoutes, fromServer(srds.GetScopedRdsConfigSource()), sr.GetName())
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
	if n := s.GetRouteConfigurationName(); n != "" {
		r.add(routes, fromServer(rdsSource), n)
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
		r.add(clusters, true, mp.GetCluster())
	}
	for _, rt := range vh.GetRoutes() {
		a := rt.GetRoute()
		if a == nil {
			continue
		}
		r.add(clusters, true, a.GetCluster())
		for _, wc := range a.GetWeightedClusters().GetClusters() {
			r.add(clusters, true, wc.GetName())
		}
		for _, mp := range a.GetRequestMirrorPolicies() {
			r.add(clusters, true, mp.GetCluster())
		}
	}
}

func (r *refWalker) cluster(c *clusterv3.Cluster) {
	if c.GetType() == clusterv3.Cluster_EDS {
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		r.add(endpoints, fromServer(c.GetEdsClusterConfig().GetEdsConfig()), name)
	}
	var agg aggregatev3.ClusterConfig
	if unpack(c.GetClusterType().GetTypedConfig(), &agg) {
		r.add(clusters, true, agg.GetClusters()...)
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
	if s.GetSdsConfig() != nil {
		r.add(secrets, fromServer(s.GetSdsConfig()), s.GetName())
	}
}

// extensionConfig reads a filter whose config comes from config discovery
// (ECDS), if cd is set.
func (r *refWalker) extensionConfig(name string, cd *corev3.ExtensionConfigSource) {
	if cd != nil {
		r.add(extensionConfigs, fromServer(cd.GetConfigSource()), name)
	}
}

// unpack decodes a into m when a holds m's type.
func unpack(a *anypb.Any, m proto.Message) bool {
	if a == nil || !a.MessageIs(m) {
		return false
	}
	return a.UnmarshalTo(m) == nil
}

// normalized returns r with each list sorted, without duplicates, nil when empty.
func (r Refs) normalized() Refs {
	for _, l := range []*[]string{&r.Routes, &r.ScopedRoutes, &r.Clusters, &r.Endpoints, &r.Secrets, &r.ExtensionConfigs} {
		*l = sortedNames(*l)
	}
	return r
}

// ByType yields each non-empty list of r with the type URL of the resources it
// names, in a fixed order: routes, scoped routes, clusters, endpoints, secrets,
// extension configs.
func (r Refs) ByType() iter.Seq2[string, []string] {
	return func(yield func(string, []string) bool) {
		for _, l := range []struct {
			typeURL string
			names   []string
		}{
			{protocol.TypeRoute, r.Routes},
			{protocol.TypeScopedRoute, r.ScopedRoutes},
			{protocol.TypeCluster, r.Clusters},
			{protocol.TypeEndpoint, r.Endpoints},
			{protocol.TypeSecret, r.Secrets},
			{protocol.TypeExtensionCfg, r.ExtensionConfigs},
		} {
			if len(l.names) > 0 && !yield(l.typeURL, l.names) {
				return
			}
		}
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
