package xdstest

import (
	"fmt"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
)

// Workload is the shape of a synthetic configuration: the load the benchmarks
// serve. Resources builds it.
type Workload struct {
	// Clusters is the number of EDS clusters, each with its own
	// ClusterLoadAssignment of the same name.
	Clusters int
	// EndpointsPerCluster is the number of endpoints of each cluster.
	EndpointsPerCluster int
	// Listeners is the number of HTTP listeners; listener i uses route
	// configuration i%Routes.
	Listeners int
	// Routes is the number of route configurations.
	Routes int
	// VirtualHostsPerRoute is the number of virtual hosts of each route
	// configuration; virtual hosts route to the clusters round-robin.
	VirtualHostsPerRoute int
}

// DefaultWorkload is the benchmarks' default load: 1000 clusters of 4 endpoints,
// 50 listeners and 50 route configurations of 20 virtual hosts.
func DefaultWorkload() Workload {
	return Workload{
		Clusters:             1000,
		EndpointsPerCluster:  4,
		Listeners:            50,
		Routes:               50,
		VirtualHostsPerRoute: 20,
	}
}

// Resources builds the workload's resources, keyed by type URL (protocol.TypeCluster,
// TypeEndpoint, TypeListener, TypeRoute; every key is present, possibly with an
// empty slice). Each slice is in index order, and names are zero-padded so that
// order is also the names' order: "cluster-0000", "listener-0000", "route-0000".
//
// Endpoint addresses are distinct 10.x.y.z addresses derived from the cluster and
// endpoint indices; virtual host v of route configuration r is "vhost-NNNN" with
// domain "vhost-NNNN.example.com" (NNNN = r*VirtualHostsPerRoute + v, so domains
// are unique across the workload) and routes "/" to cluster NNNN%Clusters.
//
// Resources panics if listeners have no route configuration to use, or virtual
// hosts no cluster to route to.
func (w Workload) Resources() map[string][]proto.Message {
	vhosts := w.Routes * w.VirtualHostsPerRoute
	if w.Listeners > 0 && w.Routes <= 0 {
		panic("xdstest: a workload with listeners needs at least one route configuration")
	}
	if vhosts > 0 && w.Clusters <= 0 {
		panic("xdstest: a workload with virtual hosts needs at least one cluster")
	}

	clusters := make([]proto.Message, 0, max(w.Clusters, 0))
	assignments := make([]proto.Message, 0, max(w.Clusters, 0))
	addrs := make([]string, 0, max(w.EndpointsPerCluster, 0))
	for i := range w.Clusters {
		name := indexedName("cluster", i, w.Clusters)
		clusters = append(clusters, Cluster(name))
		addrs = addrs[:0]
		for j := range w.EndpointsPerCluster {
			addrs = append(addrs, endpointAddress(i*w.EndpointsPerCluster+j))
		}
		assignments = append(assignments, Endpoints(name, addrs...))
	}

	routes := make([]proto.Message, 0, max(w.Routes, 0))
	for r := range w.Routes {
		vs := make([]*routev3.VirtualHost, 0, max(w.VirtualHostsPerRoute, 0))
		for v := range w.VirtualHostsPerRoute {
			n := r*w.VirtualHostsPerRoute + v
			name := indexedName("vhost", n, vhosts)
			cluster := indexedName("cluster", n%w.Clusters, w.Clusters)
			vs = append(vs, VirtualHost(name, []string{name + ".example.com"}, RouteTo("/", cluster)))
		}
		routes = append(routes, Route(indexedName("route", r, w.Routes), vs...))
	}

	listeners := make([]proto.Message, 0, max(w.Listeners, 0))
	for i := range w.Listeners {
		name := indexedName("listener", i, w.Listeners)
		route := indexedName("route", i%w.Routes, w.Routes)
		listeners = append(listeners, Listener(name, uint32(10000+i), route))
	}

	return map[string][]proto.Message{
		protocol.TypeCluster:  clusters,
		protocol.TypeEndpoint: assignments,
		protocol.TypeListener: listeners,
		protocol.TypeRoute:    routes,
	}
}

// indexedName is prefix-i with i zero-padded to at least 4 digits, and to as many
// as the largest index of n needs, so names sort like their indices.
func indexedName(prefix string, i, n int) string {
	width := max(4, len(strconv.Itoa(n-1)))
	return fmt.Sprintf("%s-%0*d", prefix, width, i)
}

// endpointAddress is the address of the workload's endpoint number g: 10.x.y.z
// from g+1 (skipping the network address 10.0.0.0), on port 8080 until the 2^24
// addresses of 10/8 run out, then on the following ports.
func endpointAddress(g int) string {
	g++
	return fmt.Sprintf("10.%d.%d.%d:%d", g>>16&0xff, g>>8&0xff, g&0xff, 8080+(g>>24))
}
