// Package workload is the configuration every benchmarked server serves and the
// changes the benchmark makes to it: built once from xdstest.Workload, so that
// leanxds, go-control-plane and the raw floor are measured on the same bytes.
//
// The go-control-plane peer, in a module of its own, imports it too.
package workload

import (
	"flag"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
)

// Flags registers the workload's shape on fs, defaulting to
// xdstest.DefaultWorkload (1,000 clusters of 4 endpoints, 50 listeners, 50 route
// configurations of 20 virtual hosts).
func Flags(fs *flag.FlagSet) *xdstest.Workload {
	w := xdstest.DefaultWorkload()
	fs.IntVar(&w.Clusters, "clusters", w.Clusters, "EDS clusters in the workload")
	fs.IntVar(&w.EndpointsPerCluster, "endpoints", w.EndpointsPerCluster, "endpoints per cluster")
	fs.IntVar(&w.Listeners, "listeners", w.Listeners, "listeners in the workload")
	fs.IntVar(&w.Routes, "routes", w.Routes, "route configurations in the workload")
	fs.IntVar(&w.VirtualHostsPerRoute, "vhosts", w.VirtualHostsPerRoute, "virtual hosts per route configuration")
	return &w
}

// Args returns the command-line flags that give a server the shape w.
func Args(w xdstest.Workload) []string {
	return []string{
		fmt.Sprintf("-clusters=%d", w.Clusters), fmt.Sprintf("-endpoints=%d", w.EndpointsPerCluster),
		fmt.Sprintf("-listeners=%d", w.Listeners), fmt.Sprintf("-routes=%d", w.Routes),
		fmt.Sprintf("-vhosts=%d", w.VirtualHostsPerRoute),
	}
}

// Types are the workload's type URLs in push order.
var Types = []string{protocol.TypeCluster, protocol.TypeEndpoint, protocol.TypeListener, protocol.TypeRoute}

// Endpoint returns cla with the port of its first endpoint set from seq: one
// endpoint of one cluster changes (scenario a).
func Endpoint(cla *endpointv3.ClusterLoadAssignment, seq int) *endpointv3.ClusterLoadAssignment {
	c := proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	if len(c.GetEndpoints()) > 0 && len(c.Endpoints[0].GetLbEndpoints()) > 0 {
		sa := c.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress()
		if sa != nil {
			sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(20000 + seq%20000)}
		}
	}
	return c
}

// AddCluster returns a copy of cluster and cla named name: one cluster and its
// endpoints are added (scenario b).
func AddCluster(cluster *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment, name string) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
	c := proto.Clone(cluster).(*clusterv3.Cluster)
	c.Name = name
	e := proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	e.ClusterName = name
	return c, e
}

// AllClusters returns a copy of every cluster with its connect timeout set from
// seq: a change that touches every cluster (scenario c).
func AllClusters(clusters []*clusterv3.Cluster, seq int) []*clusterv3.Cluster {
	out := make([]*clusterv3.Cluster, len(clusters))
	timeout := durationpb.New(time.Second + time.Duration(seq%1000+1)*time.Millisecond)
	for i, c := range clusters {
		c = proto.Clone(c).(*clusterv3.Cluster)
		c.ConnectTimeout = timeout
		out[i] = c
	}
	return out
}
