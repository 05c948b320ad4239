package xdstest

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
)

func TestDefaultWorkload(t *testing.T) {
	w := DefaultWorkload()
	assert.Equal(t, Workload{
		Clusters:             1000,
		EndpointsPerCluster:  4,
		Listeners:            50,
		Routes:               50,
		VirtualHostsPerRoute: 20,
	}, w)
	requireConsistentWorkload(t, w)
}

func TestSmallWorkload(t *testing.T) {
	w := Workload{Clusters: 3, EndpointsPerCluster: 2, Listeners: 5, Routes: 2, VirtualHostsPerRoute: 4}
	wl := requireConsistentWorkload(t, w)

	assert.Equal(t, []string{"cluster-0000", "cluster-0001", "cluster-0002"}, names(wl.clusters))
	assert.Equal(t, []string{"route-0000", "route-0001"}, names(wl.routes))
	assert.Equal(t, []string{"listener-0000", "listener-0001", "listener-0002", "listener-0003", "listener-0004"},
		names(wl.listeners))
	assert.Equal(t, []string{"10.0.0.1:8080", "10.0.0.2:8080"}, endpointAddresses(wl.assignments[0].GetEndpoints()))
	assert.Equal(t, []string{"10.0.0.5:8080", "10.0.0.6:8080"}, endpointAddresses(wl.assignments[2].GetEndpoints()))

	// Listener i uses route configuration i%Routes.
	var listenerRoutes []string
	for _, l := range wl.listeners {
		listenerRoutes = append(listenerRoutes, routeNameOf(t, l))
	}
	assert.Equal(t, []string{"route-0000", "route-0001", "route-0000", "route-0001", "route-0000"}, listenerRoutes)

	// Virtual hosts route to the clusters round-robin, across route configurations.
	var targets []string
	for _, rc := range wl.routes {
		for _, vh := range rc.GetVirtualHosts() {
			targets = append(targets, vh.GetRoutes()[0].GetRoute().GetCluster())
		}
	}
	assert.Equal(t, []string{
		"cluster-0000", "cluster-0001", "cluster-0002", "cluster-0000",
		"cluster-0001", "cluster-0002", "cluster-0000", "cluster-0001",
	}, targets)
}

func TestWorkloadIsDeterministic(t *testing.T) {
	w := Workload{Clusters: 7, EndpointsPerCluster: 3, Listeners: 4, Routes: 3, VirtualHostsPerRoute: 5}
	a, b := w.Resources(), w.Resources()
	require.Len(t, b, len(a))
	for typeURL, resources := range a {
		require.Len(t, b[typeURL], len(resources), typeURL)
		for i := range resources {
			assert.Equal(t, marshalDeterministic(t, resources[i]), marshalDeterministic(t, b[typeURL][i]), typeURL)
		}
	}
}

func TestEmptyWorkload(t *testing.T) {
	res := Workload{}.Resources()
	for _, typeURL := range []string{protocol.TypeCluster, protocol.TypeEndpoint, protocol.TypeListener, protocol.TypeRoute} {
		got, ok := res[typeURL]
		assert.True(t, ok, typeURL)
		assert.Empty(t, got, typeURL)
	}
}

func TestWorkloadRejectsDanglingReferences(t *testing.T) {
	assert.Panics(t, func() { Workload{Listeners: 1}.Resources() }, "listeners without route configurations")
	assert.Panics(t, func() { Workload{Routes: 1, VirtualHostsPerRoute: 1}.Resources() }, "virtual hosts without clusters")
}

func TestIndexedNameSortsLikeIndices(t *testing.T) {
	assert.Equal(t, "cluster-0042", indexedName("cluster", 42, 1000))
	assert.Equal(t, "cluster-0042", indexedName("cluster", 42, 10000))
	assert.Equal(t, "cluster-00042", indexedName("cluster", 42, 10001))
	assert.Less(t, indexedName("cluster", 9999, 20000), indexedName("cluster", 10000, 20000))
}

func TestEndpointAddressesAreDistinct(t *testing.T) {
	assert.Equal(t, "10.0.0.1:8080", endpointAddress(0))
	assert.Equal(t, "10.0.1.0:8080", endpointAddress(255))
	assert.Equal(t, "10.255.255.255:8080", endpointAddress(1<<24-2))
	assert.Equal(t, "10.0.0.0:8081", endpointAddress(1<<24-1))
}

// workload is a Workload's resources, typed.
type workload struct {
	clusters    []*clusterv3.Cluster
	assignments []*endpointv3.ClusterLoadAssignment
	listeners   []*listenerv3.Listener
	routes      []*routev3.RouteConfiguration
}

// requireConsistentWorkload builds w and checks its resources: the counts w asks
// for, only the four types it builds, valid resources, unique names, distinct
// endpoint addresses, and no reference to a missing resource.
func requireConsistentWorkload(t *testing.T, w Workload) workload {
	t.Helper()
	res := w.Resources()
	require.Len(t, res, 4)
	wl := workload{
		clusters:    typed[*clusterv3.Cluster](t, res[protocol.TypeCluster]),
		assignments: typed[*endpointv3.ClusterLoadAssignment](t, res[protocol.TypeEndpoint]),
		listeners:   typed[*listenerv3.Listener](t, res[protocol.TypeListener]),
		routes:      typed[*routev3.RouteConfiguration](t, res[protocol.TypeRoute]),
	}
	require.Len(t, wl.clusters, w.Clusters)
	require.Len(t, wl.assignments, w.Clusters)
	require.Len(t, wl.listeners, w.Listeners)
	require.Len(t, wl.routes, w.Routes)
	for _, resources := range res {
		for _, r := range resources {
			requireValid(t, r)
		}
	}

	clusters := requireUnique(t, "cluster", names(wl.clusters))
	routes := requireUnique(t, "route configuration", names(wl.routes))
	requireUnique(t, "listener", names(wl.listeners))
	assignmentNames := make([]string, 0, len(wl.assignments))
	for _, cla := range wl.assignments {
		assignmentNames = append(assignmentNames, cla.GetClusterName())
	}
	requireUnique(t, "assignment", assignmentNames)

	ports := map[uint32]bool{}
	for _, l := range wl.listeners {
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		require.False(t, ports[port], "port %d used twice", port)
		ports[port] = true
		require.True(t, routes[routeNameOf(t, l)], "listener %s uses a missing route configuration", l.GetName())
	}

	addrs := map[string]bool{}
	for i, cla := range wl.assignments {
		require.Equal(t, wl.clusters[i].GetName(), cla.GetClusterName(), "assignment %d", i)
		got := endpointAddresses(cla.GetEndpoints())
		require.Len(t, got, w.EndpointsPerCluster, cla.GetClusterName())
		for _, a := range got {
			require.False(t, addrs[a], "endpoint %s used twice", a)
			addrs[a] = true
		}
	}

	domains := map[string]bool{}
	for _, rc := range wl.routes {
		require.Len(t, rc.GetVirtualHosts(), w.VirtualHostsPerRoute, rc.GetName())
		vhosts := map[string]bool{}
		for _, vh := range rc.GetVirtualHosts() {
			require.False(t, vhosts[vh.GetName()], "virtual host %s twice in %s", vh.GetName(), rc.GetName())
			vhosts[vh.GetName()] = true
			for _, d := range vh.GetDomains() {
				require.False(t, domains[d], "domain %s used twice", d)
				domains[d] = true
			}
			for _, r := range vh.GetRoutes() {
				c := r.GetRoute().GetCluster()
				require.True(t, clusters[c], "route %s/%s sends to missing cluster %q", rc.GetName(), vh.GetName(), c)
			}
		}
	}
	return wl
}

func routeNameOf(t *testing.T, l *listenerv3.Listener) string {
	t.Helper()
	hcm := unpack[*hcmv3.HttpConnectionManager](t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig())
	return hcm.GetRds().GetRouteConfigName()
}

func typed[M proto.Message](t *testing.T, resources []proto.Message) []M {
	t.Helper()
	out := make([]M, 0, len(resources))
	for _, r := range resources {
		m, ok := r.(M)
		require.True(t, ok, "unexpected %T", r)
		out = append(out, m)
	}
	return out
}

type named interface{ GetName() string }

func names[M named](resources []M) []string {
	out := make([]string, 0, len(resources))
	for _, r := range resources {
		out = append(out, r.GetName())
	}
	return out
}

func requireUnique(t *testing.T, kind string, names []string) map[string]bool {
	t.Helper()
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		require.NotEmpty(t, n, kind)
		require.False(t, seen[n], "%s %q twice", kind, n)
		seen[n] = true
	}
	return seen
}
