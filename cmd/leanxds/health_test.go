package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// The xDS port answers the gRPC health service, SERVING once the initial
// config is loaded and NOT_SERVING while draining, and server reflection, which
// lists the services: what Kubernetes gRPC probes and grpcurl ask.
func TestServeHealthAndReflection(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	ctx := t.Context()
	health := healthpb.NewHealthClient(ts.cc)
	resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())

	refl, err := reflectionpb.NewServerReflectionClient(ts.cc).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, refl.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	listed, err := refl.Recv()
	require.NoError(t, err)
	var services []string
	for _, s := range listed.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	assert.Subset(t, services, []string{
		"envoy.service.discovery.v3.AggregatedDiscoveryService",
		"envoy.service.cluster.v3.ClusterDiscoveryService",
		"envoy.service.status.v3.ClientStatusDiscoveryService",
		"grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection",
	})
	// grpcurl describes a method from the file that defines it.
	require.NoError(t, refl.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
			FileContainingSymbol: "envoy.service.discovery.v3.AggregatedDiscoveryService"}}))
	file, err := refl.Recv()
	require.NoError(t, err)
	assert.NotEmpty(t, file.GetFileDescriptorResponse().GetFileDescriptorProto())
	require.NoError(t, refl.CloseSend())

	// Draining: a watching probe is told NOT_SERVING before its stream ends.
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	first, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, first.GetStatus())
	drained := make(chan struct{})
	go func() {
		ts.drain()
		close(drained)
	}()
	next, err := watch.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, next.GetStatus())
	_, err = watch.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))
	<-drained
}
