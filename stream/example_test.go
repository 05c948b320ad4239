package stream_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// cluster is an EDS cluster named name whose endpoints are committed apart.
func cluster(name string, timeout time.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{},
		ConnectTimeout:       durationpb.New(timeout),
	}
}

// Embedding leanxds: commit resources to a store, serve it, and every connected
// client is kept correct and current as later commits change it. The client
// here is a bare ADS stream, as an Envoy of cluster "edge" opens it.
func Example() {
	st := store.New()
	if _, err := st.Commit(
		store.Set("edge", cluster("web", time.Second)),
		store.Set("edge", cluster("api", time.Second)),
	); err != nil {
		log.Fatal(err) // names every invalid resource and field; nothing changed
	}

	srv := stream.New(st, stream.Options{ScopeOf: stream.ScopeByCluster})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = g.Serve(srv.Listener(lis)) }()
	defer g.Stop()

	// An Envoy of cluster "edge" subscribes to every cluster.
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		log.Fatal(err)
	}
	node := &corev3.Node{Id: "envoy-1", Cluster: "edge"}
	if err := ads.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: protocol.TypeCluster}); err != nil {
		log.Fatal(err)
	}
	first, err := ads.Recv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("clusters:", len(first.GetResources()))

	// The client ACKs; an identical commit then changes nothing and wakes
	// nobody, a real change is pushed at once.
	ack := &discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster,
		VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()}
	if err := ads.Send(ack); err != nil {
		log.Fatal(err)
	}
	same, _ := st.Commit(store.Set("edge", cluster("web", time.Second)))
	fmt.Println("identical commit changed:", same.Changed())
	if _, err := st.Commit(store.Set("edge", cluster("web", 2*time.Second))); err != nil {
		log.Fatal(err)
	}
	next, err := ads.Recv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pushed clusters:", len(next.GetResources()), "new version:", next.GetVersionInfo() != first.GetVersionInfo())

	// Output:
	// clusters: 2
	// identical commit changed: false
	// pushed clusters: 2 new version: true
}

// Who runs what: after a commit, wait until every node of scope "edge" runs
// its revision, or one rejects it.
func ExampleServer_WaitApplied() {
	st := store.New()
	if _, err := st.Commit(store.Set("edge", cluster("web", time.Second))); err != nil {
		log.Fatal(err)
	}
	srv := stream.New(st, stream.Options{})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = g.Serve(srv.Listener(lis)) }()
	defer g.Stop()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		log.Fatal(err)
	}
	node := &corev3.Node{Id: "envoy-1", Cluster: "edge"}
	if err := ads.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: protocol.TypeCluster}); err != nil {
		log.Fatal(err)
	}
	if _, err := ads.Recv(); err != nil {
		log.Fatal(err)
	}

	res, err := st.Commit(store.Set("edge", cluster("web", 2*time.Second)))
	if err != nil {
		log.Fatal(err)
	}
	edge := stream.Selector{Scope: "edge"}
	pushed, err := ads.Recv()
	if err != nil {
		log.Fatal(err)
	}
	a := srv.Applied(res.Revision, edge)
	fmt.Println("pushed, not answered yet:", a.Nodes[0].NodeID, a.Nodes[0].State)

	ack := &discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster,
		VersionInfo: pushed.GetVersionInfo(), ResponseNonce: pushed.GetNonce()}
	if err := ads.Send(ack); err != nil {
		log.Fatal(err)
	}
	a, err = srv.WaitApplied(ctx, res.Revision, edge)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after the ACK:", a.Nodes[0].NodeID, a.Nodes[0].State, "at the revision:", a.Nodes[0].Revision == res.Revision)

	// Output:
	// pushed, not answered yet: envoy-1 pending
	// after the ACK: envoy-1 acked at the revision: true
}
