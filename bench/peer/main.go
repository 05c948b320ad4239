// Command gcpserver is the go-control-plane peer of the leanxds load benchmarks:
// go-control-plane v0.14.0's xDS server over one SnapshotCache snapshot shared by
// every node (a constant node hash), in ADS mode, with a version per type so that
// a change re-sends only the types it touches. With -eds=linear, endpoints come
// from a LinearCache instead (clusters, listeners and routes stay in the
// snapshot), muxed with cache.MuxCache.
//
// It lives in its own module so that leanxds never depends on go-control-plane's
// server or caches, and needs nothing from leanxds: it loads the workload from the
// file the benchmark writes (-workload), applies the benchmark's three changes
// with its own copy of their code, and speaks the same loopback control API
// (GET /stats, POST /commit).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "xDS gRPC listen address (loopback)")
	ctl := flag.String("control", "127.0.0.1:18001", "control API listen address (loopback)")
	timeout := flag.Duration("timeout", 2*time.Hour, "exit after this long whatever happens")
	path := flag.String("workload", "", "workload file written by the benchmark (required)")
	eds := flag.String("eds", "snapshot", "where endpoints live: snapshot (SnapshotCache) or linear (LinearCache)")
	flag.Parse()
	if err := run(*addr, *ctl, *timeout, *path, *eds); err != nil {
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

func run(addr, ctl string, timeout time.Duration, path, eds string) error {
	if err := raiseOpenFiles(); err != nil {
		return err
	}
	p := &peer{snapshots: cache.NewSnapshotCache(true, nodeHash{}, nil), claIndex: map[string]int{}, versions: map[types.ResponseType]int{}}
	if err := p.load(path); err != nil {
		return err
	}
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

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The same keepalive as the other benchmarked servers (see bench/control.ServerKeepalive).
	g := grpc.NewServer(grpc.KeepaliveParams(keepalive.ServerParameters{Timeout: 5 * time.Minute}))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, server.NewServer(ctx, c, nil))
	go func() { _ = g.Serve(lis) }()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, p.stats(r.URL.Query().Get("gc") == "1"))
	})
	mux.HandleFunc("POST /commit", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		seq, _ := strconv.Atoi(q.Get("seq"))
		start := time.Now()
		if err := p.apply(q.Get("kind"), q.Get("name"), seq); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]int64{"start_unix_nano": start.UnixNano(), "duration_nanos": int64(time.Since(start))})
	})
	ctlLis, err := net.Listen("tcp", ctl)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(ctlLis, mux) }()

	select {
	case <-ctx.Done():
	case <-time.After(timeout):
		fmt.Fprintln(os.Stderr, "gcpserver: -timeout reached, exiting")
	}
	g.Stop()
	return nil
}

// load reads the workload file: one length-delimited DiscoveryResponse per type.
func (p *peer) load(path string) error {
	if path == "" {
		return errors.New("-workload is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		var resp discoveryv3.DiscoveryResponse
		if err := protodelim.UnmarshalFrom(r, &resp); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, a := range resp.GetResources() {
			m, err := a.UnmarshalNew()
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			switch m := m.(type) {
			case *clusterv3.Cluster:
				p.clusters = append(p.clusters, m)
			case *endpointv3.ClusterLoadAssignment:
				p.claIndex[m.GetClusterName()] = len(p.clas)
				p.clas = append(p.clas, m)
			case *listenerv3.Listener:
				p.listeners = append(p.listeners, m)
			case *routev3.RouteConfiguration:
				p.routes = append(p.routes, m)
			}
		}
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

// apply makes one of the benchmark's changes (the same as bench/workload's).
func (p *peer) apply(kind, name string, seq int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case "endpoint": // one endpoint of one cluster
		i, ok := p.claIndex[name]
		if !ok {
			return fmt.Errorf("no cluster %q", name)
		}
		c := proto.Clone(p.clas[i]).(*endpointv3.ClusterLoadAssignment)
		if len(c.GetEndpoints()) > 0 && len(c.Endpoints[0].GetLbEndpoints()) > 0 {
			if sa := c.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress(); sa != nil {
				sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(20000 + seq%20000)}
			}
		}
		if p.linear != nil {
			return p.linear.UpdateResource(name, c)
		}
		p.clas[i] = c
		return p.publish(types.Endpoint)
	case "cluster": // one cluster added, with its endpoints
		c := proto.Clone(p.clusters[0]).(*clusterv3.Cluster)
		c.Name = name
		e := proto.Clone(p.clas[0]).(*endpointv3.ClusterLoadAssignment)
		e.ClusterName = name
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
	case "all": // every cluster changes
		timeout := durationpb.New(time.Second + time.Duration(seq%1000+1)*time.Millisecond)
		for i, c := range p.clusters {
			c = proto.Clone(c).(*clusterv3.Cluster)
			c.ConnectTimeout = timeout
			p.clusters[i] = c
		}
		return p.publish(types.Cluster)
	}
	return fmt.Errorf("unknown kind %q", kind)
}

func (p *peer) stats(gc bool) map[string]any {
	if gc {
		// Two collections: caches that sync.Pool keeps (gRPC's buffers) last one
		// GC in its victim cache, so after two what is left is held. The second
		// returns freed pages: RSS then counts what is held.
		runtime.GC()
		debug.FreeOSMemory()
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	p.mu.Lock()
	defer p.mu.Unlock()
	return map[string]any{
		"rss_bytes": rss(), "heap_bytes": s[0].Value.Uint64(), "cpu_seconds": tv(ru.Utime) + tv(ru.Stime),
		"goroutines": runtime.NumGoroutine(),
		"clusters":   len(p.clusters), "assignments": len(p.clas), "listeners": len(p.listeners), "routes": len(p.routes),
	}
}

func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func raiseOpenFiles() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
