package conv

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
	"github.com/leanxds/leanxds/stream/machine"
)

// This file is the only one of the package that knows the server's API: the
// in-memory transport (memory.go) reaches a stream through stepper alone.

// Memory serves a store's resources to scripted clients in memory. Each stream
// it opens is a stream.Session of a stream.Server: exactly what the gRPC
// handler runs between a request and a send (the node on the first request,
// R2, and its scope; the type of a per-type service; Authorize; the state
// machine; the status a refused request ends its stream with; the frame each
// response is sent in), driven by the test goroutine with no gRPC, goroutine
// or clock in between. Hooks and the transport's own limits (timeouts,
// connections) are not the protocol and do not run.
//
// A Memory and the streams it opens are driven by one test goroutine.
type Memory struct {
	st  *store.Store
	srv *stream.Server
	// streams are the streams opened, in order; ended ones are skipped by Streams.
	streams []*memSession
}

// NewMemory returns a server of st's resources for in-memory streams, configured
// as stream.New is with opts (ScopeOf, NoDefaultScope, Limits, Authorize). Its
// clock is Options.Now, or a fixed instant when that is nil.
func NewMemory(st *store.Store, opts stream.Options) *Memory {
	if opts.Now == nil {
		epoch := time.Unix(0, 0)
		opts.Now = func() time.Time { return epoch }
	}
	return &Memory{st: st, srv: stream.New(st, opts)}
}

// ADS opens an aggregated state-of-the-world stream in memory for a client
// identifying as node. Options are accepted for symmetry with ADS; the in-memory
// transport has no timeout to tune.
func (m *Memory) ADS(t testing.TB, node *corev3.Node, _ ...Option) *SotW {
	t.Helper()
	return newSotW(t, "ADS", m.sotw(t, ""), node)
}

// Typed opens the per-type state-of-the-world stream of typeURL in memory.
func (m *Memory) Typed(t testing.TB, typeURL string, node *corev3.Node, _ ...Option) *SotW {
	t.Helper()
	if _, ok := sotwMethod(typeURL); !ok {
		t.Fatalf("conv: no state-of-the-world service for type %s", typeURL)
	}
	return newSotW(t, protocol.Short(typeURL), m.sotw(t, typeURL), node)
}

// DeltaADS opens an aggregated incremental stream in memory.
func (m *Memory) DeltaADS(t testing.TB, node *corev3.Node, _ ...Option) *Delta {
	t.Helper()
	return newDelta(t, "delta ADS", m.delta(t, ""), node)
}

// DeltaTyped opens the per-type incremental stream of typeURL in memory.
func (m *Memory) DeltaTyped(t testing.TB, typeURL string, node *corev3.Node, _ ...Option) *Delta {
	t.Helper()
	if _, ok := deltaMethod(typeURL); !ok {
		t.Fatalf("conv: no incremental service for type %s", typeURL)
	}
	return newDelta(t, "delta "+protocol.Short(typeURL), m.delta(t, typeURL), node)
}

// Streams returns the status of every open stream that has received its first
// request, as stream.Server.Streams does for gRPC streams.
func (m *Memory) Streams() []stream.StreamStatus {
	var out []stream.StreamStatus
	for _, s := range m.streams {
		if s.ended || !s.opened() {
			continue
		}
		out = append(out, stream.StreamStatus{StreamInfo: s.info(), Types: s.status().Types()})
	}
	return out
}

// Applied returns where the nodes of the open streams that sel selects stand
// against store revision rev, as stream.Server.Applied does for gRPC streams.
// A stream reads the store only when the test waits for its responses
// (ExpectResponse, ExpectNothing): nothing wakes it as Server.WaitFor does.
func (m *Memory) Applied(rev uint64, sel stream.Selector) stream.Applied {
	var open []stream.StreamSnapshot
	for _, s := range m.streams {
		if !s.ended && s.opened() {
			open = append(open, stream.StreamSnapshot{Info: s.info(), Status: s.status()})
		}
	}
	return stream.AppliedOf(rev, sel, open)
}

// Shutdown ends every open stream with Unavailable, as stream.Server.Shutdown
// does: what the server had sent and the test has not received can still be
// received.
func (m *Memory) Shutdown() {
	for _, s := range m.streams {
		if !s.ended {
			s.shutdown(status.Error(codes.Unavailable, "server shutting down: reconnect"))
		}
	}
}

func (m *Memory) sotw(t testing.TB, typeURL string) transport[*discoveryv3.DiscoveryResponse] {
	sess := m.srv.SotWSession(t.Context(), typeURL)
	step := &sotwStep{sess: sess, memSession: m.open(t, sess.Info, sess.Opened, sess.Status)}
	tr := newMemStream(t, "in-memory "+sess.Info().Service, stepper[*discoveryv3.DiscoveryResponse](step), describeSotW)
	step.shutdown = tr.end
	return tr
}

func (m *Memory) delta(t testing.TB, typeURL string) transport[*discoveryv3.DeltaDiscoveryResponse] {
	sess := m.srv.DeltaSession(t.Context(), typeURL)
	step := &deltaStep{sess: sess, memSession: m.open(t, sess.Info, sess.Opened, sess.Status)}
	tr := newMemStream(t, "in-memory delta "+sess.Info().Service, stepper[*discoveryv3.DeltaDiscoveryResponse](step), describeDelta)
	step.shutdown = tr.end
	return tr
}

// memSession is what Memory knows of one stream it opened, whatever its variant.
type memSession struct {
	t  testing.TB
	st *store.Store
	// info, opened and status read the session.
	info   func() stream.StreamInfo
	opened func() bool
	status func() *machine.Status
	ended  bool
	// shutdown ends the stream with an error, as the server ending it does.
	shutdown func(error)
}

func (m *Memory) open(t testing.TB, info func() stream.StreamInfo, opened func() bool, status func() *machine.Status) *memSession {
	s := &memSession{t: t, st: m.st, info: info, opened: opened, status: status}
	m.streams = append(m.streams, s)
	return s
}

// end records that the stream is over: Streams no longer lists it.
func (s *memSession) end() { s.ended = true }

// decode turns the message the server sends into the message the client
// receives, through the bytes on the wire.
func (s *memSession) decode(sent, into proto.Message) {
	s.t.Helper()
	b, err := proto.Marshal(sent)
	if err == nil {
		err = proto.Unmarshal(b, into)
	}
	if err != nil {
		s.t.Fatalf("conv: the server's response does not survive the wire: %v", err)
	}
}

// sotwStep steps a SotW session.
type sotwStep struct {
	*memSession
	sess *stream.Session[*discoveryv3.DiscoveryRequest]
}

func (s *sotwStep) receive(req proto.Message) error {
	_, _, err := s.sess.Receive(req.(*discoveryv3.DiscoveryRequest))
	return err
}

func (s *sotwStep) responses() []*discoveryv3.DiscoveryResponse {
	var out []*discoveryv3.DiscoveryResponse
	for _, r := range s.sess.Responses(s.sess.View()) {
		m := new(discoveryv3.DiscoveryResponse)
		s.decode(s.sess.Message(r), m)
		out = append(out, m)
	}
	return out
}

// deltaStep steps a delta session.
type deltaStep struct {
	*memSession
	sess *stream.Session[*discoveryv3.DeltaDiscoveryRequest]
}

func (s *deltaStep) receive(req proto.Message) error {
	_, _, err := s.sess.Receive(req.(*discoveryv3.DeltaDiscoveryRequest))
	return err
}

func (s *deltaStep) responses() []*discoveryv3.DeltaDiscoveryResponse {
	var out []*discoveryv3.DeltaDiscoveryResponse
	for _, r := range s.sess.Responses(s.sess.View()) {
		m := new(discoveryv3.DeltaDiscoveryResponse)
		s.decode(s.sess.Message(r), m)
		out = append(out, m)
	}
	return out
}
