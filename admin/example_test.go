package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// An embedder mounts the admin pages on its own HTTP server and CSDS on its
// xDS gRPC server, beside the streams: one call each.
func Example() {
	st := store.New()
	if _, err := st.Commit(store.Set("edge", &clusterv3.Cluster{
		Name:                 "web",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{},
		ConnectTimeout:       durationpb.New(time.Second),
	})); err != nil {
		panic(err)
	}

	metrics := admin.NewMetrics(st)
	xds := stream.New(st, stream.Options{Hooks: metrics.Hooks()})
	a := admin.New(admin.Options{Store: st, Streams: xds, Metrics: metrics})
	g := grpc.NewServer(xds.GRPCOptions()...)
	xds.Register(g)
	a.RegisterCSDS(g) // then g.Serve(xds.Listener(lis))

	web := httptest.NewServer(a) // or http.Serve(adminListener, a)
	defer web.Close()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for line := range strings.Lines(string(body)) {
			if path != "/metrics" || strings.HasPrefix(line, "leanxds_resources") {
				fmt.Print(path, " ", line)
			}
		}
	}
	// Output:
	// /healthz ok
	// /readyz ready
	// /metrics leanxds_resources{scope="edge",type="CDS"} 1
}
