package bench_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/leanserver"
	"github.com/leanxds/leanxds/bench/load"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/stream"
)

// TestSmoke runs the load generator against leanxds at small N, the way the
// benchmark does (the same generator code, in process), and checks correctness
// only: every client ends fully ACKed, holding every resource the server holds,
// and every change reaches every client. It asserts nothing about time.
func TestSmoke(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clients int
		conns   int
		delta   bool
	}{
		{"sotw", 200, 200, false},
		{"sotw-multiplexed", 200, 20, false},
		{"delta", 100, 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := xdstest.Workload{Clusters: 40, EndpointsPerCluster: 2, Listeners: 4, Routes: 4, VirtualHostsPerRoute: 3}
			srv, err := leanserver.New(w.Resources())
			if err != nil {
				t.Fatal(err)
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g := grpc.NewServer(stream.ServerOption())
			stream.New(srv.Store(), stream.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(g)
			go func() { _ = g.Serve(lis) }()
			t.Cleanup(g.Stop)
			mux := http.NewServeMux()
			control.Handler(mux, srv)
			api := httptest.NewServer(mux) // on 127.0.0.1
			t.Cleanup(api.Close)

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := load.Run(ctx, load.Config{
				Label: "leanxds", Server: lis.Addr().String(), Control: api.URL,
				Clients: tc.clients, Conns: tc.conns, Procs: 1, Rounds: 1, Delta: tc.delta,
				ConnectTimeout: time.Minute, ChangeTimeout: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ready != tc.clients || res.Failed != 0 {
				t.Fatalf("%d of %d clients fully ACKed, %d failed: %v", res.Ready, tc.clients, res.Failed, res.Errors)
			}
			for _, kind := range []string{control.KindEndpoint, control.KindCluster, control.KindAll} {
				c := res.Changes[kind]
				if c == nil || c.Missed != 0 || c.Latency.N != tc.clients {
					t.Errorf("change %s did not reach every client: %+v", kind, c)
				}
			}
			// The cluster change added one cluster and its endpoints.
			want := control.Counts{Clusters: w.Clusters + 1, Assignments: w.Clusters + 1, Listeners: w.Listeners, Routes: w.Routes}
			if res.Expect != want {
				t.Errorf("server holds %+v, want %+v", res.Expect, want)
			}
			if !res.OK {
				t.Errorf("not every client ended fully ACKed with the server's counts: %+v, server %+v, errors %v", res.Check, res.Expect, res.Errors)
			}
		})
	}
}
