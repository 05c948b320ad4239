package admin

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Health is the gRPC health service (grpc.health.v1) of an xDS server, which
// Kubernetes gRPC probes, grpcurl and gRPC load balancers ask on the xDS port.
// It knows one service, the server as a whole (""): NOT_SERVING until
// SetServing(true), which a server calls once its initial config is served,
// and NOT_SERVING for good from Shutdown on, while the server drains. Other
// service names are unknown (NotFound to Check).
//
// Watch streams are told each change. Shutdown ends them once they have been
// told NOT_SERVING, so that a graceful stop of the gRPC server does not wait
// for them as it would for a stream that never ends:
//
//	h := admin.NewHealth()
//	h.Register(g)           // on the xDS gRPC server
//	h.SetServing(true)      // once the store holds the initial config
//	...
//	h.Shutdown()            // draining: before g.GracefulStop()
type Health struct {
	healthpb.UnimplementedHealthServer

	mu sync.Mutex
	// serving is the status SetServing set.
	serving bool
	// shutdown is set by Shutdown: NOT_SERVING whatever serving says.
	shutdown bool
	// changed is closed, and replaced, at every change of the status, waking
	// the Watch streams.
	changed chan struct{}
}

// NewHealth returns a health service that is NOT_SERVING.
func NewHealth() *Health { return &Health{changed: make(chan struct{})} }

// Register registers the health service on g.
func (h *Health) Register(g grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(g, h) }

// SetServing sets whether the server serves (SERVING) or not (NOT_SERVING).
// After Shutdown it changes nothing.
func (h *Health) SetServing(serving bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown || h.serving == serving {
		return
	}
	h.serving = serving
	h.notifyLocked()
}

// Serving reports whether the server is SERVING.
func (h *Health) Serving() bool {
	st, _, _ := h.status()
	return st == healthpb.HealthCheckResponse_SERVING
}

// Shutdown makes the server NOT_SERVING for good, and ends the Watch streams
// once they have sent it.
func (h *Health) Shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return
	}
	h.shutdown = true
	h.notifyLocked()
}

func (h *Health) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// status returns the server's status, the channel closed at its next change,
// and whether Shutdown was called.
func (h *Health) status() (healthpb.HealthCheckResponse_ServingStatus, <-chan struct{}, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if h.serving && !h.shutdown {
		st = healthpb.HealthCheckResponse_SERVING
	}
	return st, h.changed, h.shutdown
}

// Check answers the status of the server (service ""), and NotFound for any
// other service, as the protocol of grpc.health.v1 asks.
func (h *Health) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() != "" {
		return nil, status.Errorf(codes.NotFound, "unknown service %q: ask for the server as a whole (service \"\")", req.GetService())
	}
	st, _, _ := h.status()
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// List answers the one service known: the server as a whole.
func (h *Health) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	st, _, _ := h.status()
	return &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{"": {Status: st}}}, nil
}

// Watch sends the status of the server at once and at each change; an
// unknown service is SERVICE_UNKNOWN, as the protocol asks. It ends at
// Shutdown, after NOT_SERVING is sent, or when the client leaves.
func (h *Health) Watch(req *healthpb.HealthCheckRequest, ws healthpb.Health_WatchServer) error {
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		st, changed, shutdown := h.status()
		if req.GetService() != "" {
			st = healthpb.HealthCheckResponse_SERVICE_UNKNOWN
		}
		if st != last {
			if err := ws.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		if shutdown {
			return status.Error(codes.Unavailable, "the server is shutting down")
		}
		select {
		case <-changed:
		case <-ws.Context().Done():
			return status.FromContextError(ws.Context().Err()).Err()
		}
	}
}
