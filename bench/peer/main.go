// Command gcpserver is the go-control-plane peer of the leanxds load benchmarks:
// go-control-plane v0.14.0's xDS server over one SnapshotCache snapshot shared by
// every node (a constant node hash), in ADS mode, with a version per type so that
// a change re-sends only the types it touches. With -eds=linear, endpoints come
// from a LinearCache instead (clusters, listeners and routes stay in the
// snapshot), muxed with cache.MuxCache.
//
// It lives in its own module so that leanxds never depends on go-control-plane's
// server or caches. It shares with the other benchmarked servers what must be the
// same for all of them: the workload and its three changes (bench/workload) and
// the control API with its memory and CPU figures (bench/control).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/workload"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "xDS gRPC listen address (loopback)")
	ctl := flag.String("control", "127.0.0.1:18001", "control API listen address (loopback)")
	timeout := flag.Duration("timeout", 2*time.Hour, "exit after this long whatever happens")
	eds := flag.String("eds", "snapshot", "where endpoints live: snapshot (SnapshotCache) or linear (LinearCache)")
	w := workload.Flags(flag.CommandLine)
	flag.Parse()
	if err := run(*addr, *ctl, *timeout, *eds, w.Resources()); err != nil {
		fmt.Fprintln(os.Stderr, "gcpserver:", err)
		os.Exit(1)
	}
}

// nodeHash puts every node in one snapshot.
type nodeHash struct{}

func (nodeHash) ID(*corev3.Node) string { return "bench" }

// peer is the go-control-plane server and the configuration it serves.
type peer struct {
	snapshots cache.SnapshotCache
	linear    *cache.LinearCache // nil unless -eds=linear

	mu        sync.Mutex
	clusters  []*clusterv3.Cluster
	clas      []*endpointv3.ClusterLoadAssignment
	claIndex  map[string]int
	listeners []types.Resource
	routes    []types.Resource
	versions  map[types.ResponseType]int
}

func run(addr, ctl string, timeout time.Duration, eds string, res map[string][]proto.Message) error {
	if _, err := control.RaiseOpenFiles(); err != nil {
		return err
	}
	p := &peer{snapshots: cache.NewSnapshotCache(true, nodeHash{}, nil), claIndex: map[string]int{}, versions: map[types.ResponseType]int{}}
	p.load(res)
	var c cache.Cache = p.snapshots
	switch eds {
	case "snapshot":
	case "linear":
		initial := map[string]types.Resource{}
		for _, e := range p.clas {
			initial[e.GetClusterName()] = e
		}
		p.linear = cache.NewLinearCache(resource.EndpointType, cache.WithInitialResources(initial))
		classify := func(typeURL string) string {
			if typeURL == resource.EndpointType {
				return "linear"
			}
			return "snapshot"
		}
		c = &cache.MuxCache{
			Classify:      func(r *cache.Request) string { return classify(r.GetTypeUrl()) },
			ClassifyDelta: func(r *cache.DeltaRequest) string { return classify(r.GetTypeUrl()) },
			Caches:        map[string]cache.Cache{"linear": p.linear, "snapshot": p.snapshots},
		}
	default:
		return fmt.Errorf("-eds %q: want snapshot or linear", eds)
	}
	if err := p.publish(types.Cluster, types.Endpoint, types.Listener, types.Route); err != nil {
		return err
	}

	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := grpc.NewServer(control.ServerKeepalive())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, server.NewServer(context.Background(), c, nil))
	go func() { _ = g.Serve(lis) }()

	mux := http.NewServeMux()
	control.Handler(mux, p)
	err = control.ServeUntil("gcpserver", ctl, mux, timeout)
	g.Stop()
	return err
}

// load takes the workload's resources.
func (p *peer) load(res map[string][]proto.Message) {
	for _, m := range res[resource.ClusterType] {
		p.clusters = append(p.clusters, m.(*clusterv3.Cluster))
	}
	for _, m := range res[resource.EndpointType] {
		cla := m.(*endpointv3.ClusterLoadAssignment)
		p.claIndex[cla.GetClusterName()] = len(p.clas)
		p.clas = append(p.clas, cla)
	}
	for _, m := range res[resource.ListenerType] {
		p.listeners = append(p.listeners, m.(types.Resource))
	}
	for _, m := range res[resource.RouteType] {
		p.routes = append(p.routes, m.(types.Resource))
	}
}

// publish bumps the versions of the changed types and sets a new snapshot.
func (p *peer) publish(changed ...types.ResponseType) error {
	for _, t := range changed {
		p.versions[t]++
	}
	v := func(t types.ResponseType) string { return strconv.Itoa(p.versions[t]) }
	snap := &cache.Snapshot{}
	snap.Resources[types.Cluster] = cache.NewResources(v(types.Cluster), asResources(p.clusters))
	if p.linear == nil {
		snap.Resources[types.Endpoint] = cache.NewResources(v(types.Endpoint), asResources(p.clas))
	}
	snap.Resources[types.Listener] = cache.NewResources(v(types.Listener), p.listeners)
	snap.Resources[types.Route] = cache.NewResources(v(types.Route), p.routes)
	return p.snapshots.SetSnapshot(context.Background(), "bench", snap)
}

func asResources[T types.Resource](xs []T) []types.Resource {
	out := make([]types.Resource, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// Apply implements control.Server: one of the benchmark's changes, made with
// bench/workload's code as in the other servers.
func (p *peer) Apply(kind, name string, seq, _ int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case control.KindEndpoint:
		i, ok := p.claIndex[name]
		if !ok {
			return fmt.Errorf("no cluster %q", name)
		}
		c := workload.Endpoint(p.clas[i], seq)
		if p.linear != nil {
			return p.linear.UpdateResource(name, c)
		}
		p.clas[i] = c
		return p.publish(types.Endpoint)
	case control.KindCluster:
		c, e := workload.AddCluster(p.clusters[0], p.clas[0], name)
		p.clusters = append(p.clusters, c)
		p.claIndex[name] = len(p.clas)
		p.clas = append(p.clas, e)
		if p.linear != nil {
			if err := p.linear.UpdateResource(name, e); err != nil {
				return err
			}
			return p.publish(types.Cluster)
		}
		return p.publish(types.Cluster, types.Endpoint)
	case control.KindAll:
		p.clusters = workload.AllClusters(p.clusters, seq)
		return p.publish(types.Cluster)
	}
	return fmt.Errorf("unknown kind %q", kind)
}

// Counts implements control.Server.
func (p *peer) Counts() control.Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return control.Counts{Clusters: len(p.clusters), Assignments: len(p.clas), Listeners: len(p.listeners), Routes: len(p.routes)}
}
