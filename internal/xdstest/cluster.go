package xdstest

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ClusterOption changes a cluster built by Cluster.
type ClusterOption func(*clusterv3.Cluster)

// Cluster returns an EDS cluster whose endpoints are fetched over ADS, with a
// 1s connect timeout and round-robin load balancing. Without WithServiceName, the
// EDS resource it asks for is named like the cluster.
func Cluster(name string, opts ...ClusterOption) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// WithServiceName sets the EDS service_name: the name of the
// ClusterLoadAssignment the cluster asks for, when it differs from the cluster's.
func WithServiceName(serviceName string) ClusterOption {
	return func(c *clusterv3.Cluster) {
		if c.EdsClusterConfig == nil {
			c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()}
		}
		c.EdsClusterConfig.ServiceName = serviceName
	}
}

// WithConnectTimeout sets the cluster's connect_timeout.
func WithConnectTimeout(d time.Duration) ClusterOption {
	return func(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(d) }
}

// WithUpstreamTLS makes the cluster talk TLS to its endpoints, presenting the
// client certificate of the SDS secret sdsSecretName, fetched over ADS.
func WithUpstreamTLS(sdsSecretName string) ClusterOption {
	return func(c *clusterv3.Cluster) { c.TransportSocket = upstreamTLS(sdsSecretName) }
}

// WithLbPolicy sets the cluster's load-balancing policy.
func WithLbPolicy(p clusterv3.Cluster_LbPolicy) ClusterOption {
	return func(c *clusterv3.Cluster) { c.LbPolicy = p }
}

// StaticCluster returns a STATIC cluster whose endpoints ("host:port", hosts
// being IP addresses) are inline in its load_assignment, so it needs no EDS.
func StaticCluster(name string, endpoints ...string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment:       Endpoints(name, endpoints...),
	}
}
