package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/leanxds/leanxds/protocol"
)

// The program serves the example config, its admin pages, and a change of
// the directory, and stops when its context ends.
func TestRunServesTheDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"clusters.yaml", "endpoints.yaml", "listeners.yaml", "routes.yaml", "secrets.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "edge", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	type addrs struct{ xds, admin net.Addr }
	up := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, dir, "127.0.0.1:0", "127.0.0.1:0", func(x, a net.Addr) { up <- addrs{x, a} })
	}()
	var a addrs
	select {
	case a = <-up:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	}

	resp, err := http.Get("http://" + a.admin.String() + "/readyz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "ready")

	cc, err := grpc.NewClient(a.xds.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	health, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, health.GetStatus())
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	require.NoError(t, err)
	require.NoError(t, ads.Send(&discoveryv3.DiscoveryRequest{
		Node: &corev3.Node{Id: "envoy-1"}, TypeUrl: protocol.TypeCluster}))
	first, err := ads.Recv()
	require.NoError(t, err)
	assert.Len(t, first.GetResources(), 3, "the clusters of examples/edge")
	require.NoError(t, ads.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster,
		VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()}))

	// A cluster added to the directory reaches the client.
	extra := `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: extra
type: STATIC
connect_timeout: 1s
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "extra.yaml"), []byte(extra), 0o644))
	next, err := ads.Recv()
	require.NoError(t, err)
	assert.Len(t, next.GetResources(), 4)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
