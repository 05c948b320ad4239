package conv

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// This file is the only one of the package that knows the state machine's API:
// the in-memory transport (memory.go) reaches the machine through stepper alone.

// Memory serves a store's resources to scripted clients in memory: each stream
// it opens is the server's own state machine (stream.SotW, stream.Delta), driven
// by the test goroutine with no gRPC, goroutine or clock in between. It applies
// what the gRPC handler applies around the machine: the node on the first
// request (R2) and its scope, the type of a per-type service, Authorize, and
// the classification of a refused request into the gRPC status its stream ends
// with. Hooks and the transport's own limits (timeouts, connections) are not
// applied: they are not the protocol.
//
// A Memory and the streams it opens are driven by one test goroutine.
type Memory struct {
	st   *store.Store
	opts stream.Options
	// at is the time every request is received at: a fixed instant, or
	// Options.Now when set.
	at func() time.Time
	// streams are the streams opened, in order; ended ones are skipped by Streams.
	streams []*machineStream
	nextID  uint64
}

// NewMemory returns a server of st's resources for in-memory streams, configured
// as stream.New is with opts (ScopeOf, NoDefaultScope, Limits, Authorize, Now).
func NewMemory(st *store.Store, opts stream.Options) *Memory {
	if opts.ScopeOf == nil {
		opts.ScopeOf = stream.ScopeByCluster
	}
	at := opts.Now
	if at == nil {
		epoch := time.Unix(0, 0)
		at = func() time.Time { return epoch }
	}
	return &Memory{st: st, opts: opts, at: at}
}

// ADS opens an aggregated state-of-the-world stream in memory for a client
// identifying as node. Options are accepted for symmetry with ADS; the in-memory
// transport has no timeout to tune.
func (m *Memory) ADS(t testing.TB, node *corev3.Node, _ ...Option) *SotW {
	t.Helper()
	return newSotW(t, "ADS", m.sotw(t, "", "ads"), node)
}

// Typed opens the per-type state-of-the-world stream of typeURL in memory.
func (m *Memory) Typed(t testing.TB, typeURL string, node *corev3.Node, _ ...Option) *SotW {
	t.Helper()
	if _, ok := sotwMethod(typeURL); !ok {
		t.Fatalf("conv: no state-of-the-world service for type %s", typeURL)
	}
	return newSotW(t, protocol.Short(typeURL), m.sotw(t, typeURL, strings.ToLower(protocol.Short(typeURL))), node)
}

// DeltaADS opens an aggregated incremental stream in memory.
func (m *Memory) DeltaADS(t testing.TB, node *corev3.Node, _ ...Option) *Delta {
	t.Helper()
	return newDelta(t, "delta ADS", m.delta(t, "", "ads"), node)
}

// DeltaTyped opens the per-type incremental stream of typeURL in memory.
func (m *Memory) DeltaTyped(t testing.TB, typeURL string, node *corev3.Node, _ ...Option) *Delta {
	t.Helper()
	if _, ok := deltaMethod(typeURL); !ok {
		t.Fatalf("conv: no incremental service for type %s", typeURL)
	}
	name := "delta " + protocol.Short(typeURL)
	return newDelta(t, name, m.delta(t, typeURL, strings.ToLower(protocol.Short(typeURL))), node)
}

// Streams returns the status of every open stream that has received its first
// request, as stream.Server.Streams does.
func (m *Memory) Streams() []stream.StreamStatus {
	var out []stream.StreamStatus
	v := m.st.View()
	for _, s := range m.streams {
		if s.ended || s.status == nil {
			continue
		}
		out = append(out, stream.StreamStatus{StreamInfo: s.info, Types: s.status(v)})
	}
	return out
}

// Shutdown ends every open stream with Unavailable, as stream.Server.Shutdown
// does: what the machines had sent and the test has not received can still be
// received.
func (m *Memory) Shutdown() {
	for _, s := range m.streams {
		if !s.ended {
			s.shutdown(status.Error(codes.Unavailable, "server shutting down: reconnect"))
		}
	}
}

func (m *Memory) sotw(t testing.TB, fixedType, service string) transport[*discoveryv3.DiscoveryResponse] {
	step := &sotwStep{machineStream: m.open("sotw", fixedType, service)}
	tr := newMemStream(t, "in-memory "+service, stepper[*discoveryv3.DiscoveryResponse](step), describeSotW)
	step.shutdown = tr.end
	return tr
}

func (m *Memory) delta(t testing.TB, fixedType, service string) transport[*discoveryv3.DeltaDiscoveryResponse] {
	step := &deltaStep{machineStream: m.open("delta", fixedType, service)}
	tr := newMemStream(t, "in-memory delta "+service, stepper[*discoveryv3.DeltaDiscoveryResponse](step), describeDelta)
	step.shutdown = tr.end
	return tr
}

// sotwStep steps a SotW machine.
type sotwStep struct {
	*machineStream
	sm *stream.SotW // nil until the first request
}

func (s *sotwStep) receive(req proto.Message) error {
	r := req.(*discoveryv3.DiscoveryRequest)
	if err := s.checkType(&r.TypeUrl); err != nil {
		return err
	}
	if s.sm == nil {
		scope, kept, err := s.open(r.GetNode())
		if err != nil {
			return err
		}
		s.sm = stream.NewSotW(scope, kept, s.m.opts.Limits)
		s.status = s.sm.Status
	}
	_, err := s.sm.Receive(r, s.m.at(), s.m.st.View())
	return s.refused(err)
}

func (s *sotwStep) responses() []*discoveryv3.DiscoveryResponse {
	if s.sm == nil {
		return nil
	}
	var out []*discoveryv3.DiscoveryResponse
	for _, r := range s.sm.Responses(s.m.st.View()) {
		out = append(out, sotwWire(r))
	}
	return out
}

// deltaStep steps a delta machine.
type deltaStep struct {
	*machineStream
	sm *stream.Delta // nil until the first request
}

func (s *deltaStep) receive(req proto.Message) error {
	r := req.(*discoveryv3.DeltaDiscoveryRequest)
	if err := s.checkType(&r.TypeUrl); err != nil {
		return err
	}
	if s.sm == nil {
		scope, kept, err := s.open(r.GetNode())
		if err != nil {
			return err
		}
		s.sm = stream.NewDelta(scope, kept, s.m.opts.Limits)
		s.status = s.sm.Status
	}
	_, err := s.sm.Receive(r, s.m.at())
	return s.refused(err)
}

func (s *deltaStep) responses() []*discoveryv3.DeltaDiscoveryResponse {
	if s.sm == nil {
		return nil
	}
	var out []*discoveryv3.DeltaDiscoveryResponse
	for _, r := range s.sm.Responses(s.m.st.View()) {
		out = append(out, deltaWire(r))
	}
	return out
}

// machineStream is what Memory knows of one stream it opened.
type machineStream struct {
	m         *Memory
	info      stream.StreamInfo
	fixedType string
	// status reads the machine's per-type state; nil until the first request.
	status func(store.View) []stream.TypeStatus
	ended  bool
	// shutdown ends the stream with an error, as the server ending it does.
	shutdown func(error)
}

func (m *Memory) open(variant, fixedType, service string) *machineStream {
	m.nextID++
	ms := &machineStream{m: m, fixedType: fixedType,
		info: stream.StreamInfo{ID: m.nextID, Variant: variant, Service: service, ConnectedAt: m.at()}}
	m.streams = append(m.streams, ms)
	return ms
}

// checkType fills in or checks the type URL of a request on a per-type service.
func (ms *machineStream) checkType(typeURL *string) error {
	switch {
	case ms.fixedType == "":
	case *typeURL == "":
		*typeURL = ms.fixedType
	case *typeURL != ms.fixedType:
		return status.Errorf(codes.InvalidArgument, "request for %s on the %s service", *typeURL, ms.info.Service)
	}
	return nil
}

// open starts the stream on its first request: R2, the first request names the
// node, which decides the scope. It returns the scope and what the stream keeps
// of the node.
func (ms *machineStream) open(node *corev3.Node) (scope string, kept *corev3.Node, err error) {
	o := ms.m.opts
	if node == nil {
		return "", nil, status.Errorf(codes.InvalidArgument, "the first request of a stream must carry a node (R2)")
	}
	limit := o.Limits.MaxNodeBytes
	if limit <= 0 {
		limit = stream.DefaultMaxNodeBytes
	}
	if n := proto.Size(node); n > limit {
		return "", nil, status.Errorf(codes.InvalidArgument, "the node of the first request of a stream is %d bytes, more than the limit of %d bytes per node", n, limit)
	}
	if o.Authorize != nil {
		if err := o.Authorize(context.Background(), node); err != nil {
			return "", nil, status.Errorf(codes.PermissionDenied, "node %q refused: %v", node.GetId(), err)
		}
	}
	scope = o.ScopeOf(node)
	if !o.NoDefaultScope && !ms.m.st.View().HasScope(scope) {
		scope = stream.DefaultScope
	}
	kept = &corev3.Node{
		Id: node.GetId(), Cluster: node.GetCluster(), Metadata: node.GetMetadata(), Locality: node.GetLocality(),
		UserAgentName: node.GetUserAgentName(), UserAgentVersionType: node.UserAgentVersionType,
	}
	ms.info.NodeID, ms.info.Cluster, ms.info.Scope, ms.info.Node = kept.GetId(), kept.GetCluster(), scope, kept
	return scope, kept, nil
}

// refused classifies a request the machine refused: the stream ends with
// InvalidArgument and what was wrong.
func (ms *machineStream) refused(err error) error {
	if err == nil {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "node %q: %v", ms.info.NodeID, err)
}

// end records that the stream is over: Streams no longer lists it.
func (ms *machineStream) end() { ms.ended = true }

// sotwWire is the DiscoveryResponse that carries r on the wire.
func sotwWire(r *stream.Response) *discoveryv3.DiscoveryResponse {
	m := &discoveryv3.DiscoveryResponse{VersionInfo: r.Version, TypeUrl: r.TypeURL, Nonce: r.Nonce}
	for _, e := range r.Resources {
		m.Resources = append(m.Resources, &anypb.Any{TypeUrl: e.TypeURL, Value: e.Body})
	}
	return m
}

// deltaWire is the DeltaDiscoveryResponse that carries r on the wire: each
// resource under the name the client knows it by (X4), with its content version
// (D8).
func deltaWire(r *stream.Response) *discoveryv3.DeltaDiscoveryResponse {
	m := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: r.Version, TypeUrl: r.TypeURL, Nonce: r.Nonce,
		RemovedResources: r.Removed}
	for i, e := range r.Resources {
		m.Resources = append(m.Resources, &discoveryv3.Resource{Name: r.ResourceName(i), Version: e.Version,
			Resource: &anypb.Any{TypeUrl: e.TypeURL, Value: e.Body}})
	}
	return m
}
