package admin

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// The health service is NOT_SERVING until the server says it serves, and again
// from Shutdown on; a Watch stream sees each change and ends at Shutdown,
// so that a graceful stop does not wait for it.
func TestHealth(t *testing.T) {
	h := NewHealth()
	g := grpc.NewServer()
	h.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	client := healthpb.NewHealthClient(cc)
	ctx := t.Context()

	check := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		return resp.GetStatus()
	}
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, check(), "no config served yet")
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "greeter"})
	assert.Equal(t, codes.NotFound, status.Code(err), "only the server as a whole is known")

	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	recv := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := watch.Recv()
		require.NoError(t, err)
		return resp.GetStatus()
	}
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, recv())
	unknown, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "greeter"})
	require.NoError(t, err)
	resp, err := unknown.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVICE_UNKNOWN, resp.GetStatus())

	h.SetServing(true)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recv())
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, check())
	assert.True(t, h.Serving())
	list, err := client.List(ctx, &healthpb.HealthListRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, list.GetStatuses()[""].GetStatus())

	// Draining: NOT_SERVING for good, and the watches end.
	h.Shutdown()
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, recv())
	_, err = watch.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err), "the watch ends once it said NOT_SERVING")
	_, err = unknown.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))
	h.SetServing(true)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, check(), "SetServing changes nothing after Shutdown")
	assert.False(t, h.Serving())

	// With no watch left open, a graceful stop returns at once.
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("GracefulStop waited for a health watch")
	}
}
