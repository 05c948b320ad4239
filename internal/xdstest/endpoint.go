package xdstest

import (
	"fmt"
	"net"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Locality is one locality of the assignment built by WeightedEndpoints.
type Locality struct {
	// Region and Zone identify the locality.
	Region, Zone string
	// Weight is the locality's load_balancing_weight; 0 stands for 1, because
	// grpc-go ignores a locality without a weight.
	Weight uint32
	// Priority is the locality's priority, 0 being the highest. grpc-go requires
	// the priorities of an assignment to be contiguous from 0.
	Priority uint32
	// Endpoints are the locality's endpoints, as "host:port".
	Endpoints []string
}

// Endpoints returns the ClusterLoadAssignment of cluster: one locality (region
// "r1", zone "z1", weight 1) holding the given endpoints ("host:port"). Without
// endpoints it returns an explicit empty assignment: the cluster name and no
// locality, which tells a client the cluster has no endpoint.
func Endpoints(cluster string, endpoints ...string) *endpointv3.ClusterLoadAssignment {
	if len(endpoints) == 0 {
		return &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	}
	return WeightedEndpoints(cluster, Locality{Region: "r1", Zone: "z1", Endpoints: endpoints})
}

// WeightedEndpoints returns the ClusterLoadAssignment of cluster with one
// LocalityLbEndpoints per locality, in the order given.
func WeightedEndpoints(cluster string, localities ...Locality) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	for _, l := range localities {
		weight := l.Weight
		if weight == 0 {
			weight = 1
		}
		lle := &endpointv3.LocalityLbEndpoints{
			Locality:            &corev3.Locality{Region: l.Region, Zone: l.Zone},
			LoadBalancingWeight: wrapperspb.UInt32(weight),
			Priority:            l.Priority,
			LbEndpoints:         make([]*endpointv3.LbEndpoint, 0, len(l.Endpoints)),
		}
		for _, hostPort := range l.Endpoints {
			lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
					Endpoint: &endpointv3.Endpoint{Address: socketAddress(hostPort)},
				},
			})
		}
		cla.Endpoints = append(cla.Endpoints, lle)
	}
	return cla
}

// socketAddress parses "host:port" into a TCP socket address, panicking when it
// is malformed.
func socketAddress(hostPort string) *corev3.Address {
	host, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		panic(fmt.Sprintf("xdstest: endpoint %q: %v", hostPort, err))
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		panic(fmt.Sprintf("xdstest: endpoint %q: bad port: %v", hostPort, err))
	}
	return address(host, uint32(port))
}

func address(host string, port uint32) *corev3.Address {
	return &corev3.Address{
		Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       host,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}},
	}
}
