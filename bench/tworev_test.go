package bench_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/leanserver"
	"github.com/leanxds/leanxds/bench/load"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/stream"
)

// TestSmokeTwoRevisions is TestSmoke against the server of `benchrun -servers
// leanxds-2rev`: half the nodes are served the workload with a change staged,
// the others the workload without it, and every change of the benchmark
// reaches every client of both. Each client's node ends holding the cluster version
// of its own revision: one version for the nodes the Router selects, another
// for the others, about half the nodes each.
func TestSmokeTwoRevisions(t *testing.T) {
	w := xdstest.Workload{Clusters: 40, EndpointsPerCluster: 2, Listeners: 4, Routes: 4, VirtualHostsPerRoute: 3}
	lean, router, err := leanserver.NewTwoRevisions(w.Resources(), 50)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(stream.ServerOption())
	// The cluster version each node ACKed last.
	var mu sync.Mutex
	acked := map[string]string{}
	hooks := stream.Hooks{ACK: func(info stream.StreamInfo, typeURL, version string, _ time.Duration) {
		if typeURL == protocol.TypeCluster {
			mu.Lock()
			acked[info.NodeID] = version
			mu.Unlock()
		}
	}}
	srv := stream.New(lean.Store(), stream.Options{Router: router, Hooks: hooks, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	mux := http.NewServeMux()
	control.Handler(mux, lean)
	api := httptest.NewServer(mux) // on 127.0.0.1
	t.Cleanup(api.Close)

	const clients = 200
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := load.Run(ctx, load.Config{
		Label: "leanxds-2rev", Server: lis.Addr().String(), Control: api.URL,
		Clients: clients, Conns: clients, Procs: 1, Rounds: 1,
		ConnectTimeout: time.Minute, ChangeTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ready != clients || res.Failed != 0 {
		t.Fatalf("%d of %d clients fully ACKed, %d failed: %v", res.Ready, clients, res.Failed, res.Errors)
	}
	for _, kind := range []string{control.KindEndpoint, control.KindCluster, control.KindAll} {
		if c := res.Changes[kind]; c == nil || c.Missed != 0 || c.Latency.N != clients {
			t.Errorf("change %s did not reach every client: %+v", kind, c)
		}
	}
	if !res.OK {
		t.Errorf("not every client ended fully ACKed with the server's counts: %+v, server %+v, errors %v", res.Check, res.Expect, res.Errors)
	}
	// Each group holds the clusters of its own revision.
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != clients {
		t.Fatalf("%d nodes ACKed clusters, want %d", len(acked), clients)
	}
	versions := map[bool]map[string]int{true: {}, false: {}}
	sel := stream.Selector{Percent: 50}
	for id, v := range acked {
		versions[sel.Matches(stream.DefaultScope, &corev3.Node{Id: id})][v]++
	}
	for selected, vs := range versions {
		if len(vs) != 1 {
			t.Errorf("nodes selected=%v hold cluster versions %v, want one", selected, vs)
		}
		for v, n := range vs {
			if n < clients/4 {
				t.Errorf("only %d of %d nodes (selected=%v) hold cluster version %q", n, clients, selected, v)
			}
			if versions[!selected][v] > 0 {
				t.Errorf("both groups hold cluster version %q", v)
			}
		}
	}
}
