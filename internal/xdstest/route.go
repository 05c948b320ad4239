package xdstest

import (
	"maps"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Route returns the route configuration name holding vhosts.
func Route(name string, vhosts ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}

// VirtualHost returns a virtual host serving domains with routes, matched in order.
func VirtualHost(name string, domains []string, routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
}

// RouteTo returns a route sending every request whose path starts with prefix to
// cluster.
func RouteTo(prefix, cluster string) *routev3.Route {
	return &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		}},
	}
}

// WeightedRoute returns a route splitting the requests whose path starts with
// prefix between clusters in proportion to weights (cluster name → weight). The
// clusters are listed sorted by name, so equal maps give equal resources. Envoy
// and grpc-go reject a split whose weights add up to 0.
func WeightedRoute(prefix string, weights map[string]uint32) *routev3.Route {
	split := &routev3.WeightedCluster{}
	for _, name := range slices.Sorted(maps.Keys(weights)) {
		split.Clusters = append(split.Clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:   name,
			Weight: wrapperspb.UInt32(weights[name]),
		})
	}
	return &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: split},
		}},
	}
}

// SimpleRoute returns the route configuration name with one virtual host "*"
// matching every domain, whose single route "/" sends everything to the one
// cluster given, or splits it evenly between several. Without clusters the
// virtual host has no route, and every request gets a 404.
func SimpleRoute(name string, clusters ...string) *routev3.RouteConfiguration {
	vhost := VirtualHost("*", []string{"*"})
	switch len(clusters) {
	case 0:
	case 1:
		vhost.Routes = []*routev3.Route{RouteTo("/", clusters[0])}
	default:
		weights := make(map[string]uint32, len(clusters))
		for _, c := range clusters {
			weights[c] = 1
		}
		vhost.Routes = []*routev3.Route{WeightedRoute("/", weights)}
	}
	return Route(name, vhost)
}
