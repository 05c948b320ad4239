package conformance_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Type URLs, short.
const (
	lds = protocol.TypeListener
	rds = protocol.TypeRoute
	cds = protocol.TypeCluster
	eds = protocol.TypeEndpoint
)

// waitFor bounds every wait of the suite for something a client or the server
// must do: generous, because a real client backs off before it reconnects.
const waitFor = 15 * time.Second

// xdsServer is a leanxds server on 127.0.0.1 as a user runs it: a store, the
// stream server over it, a gRPC server. It can be restarted on the same address
// over the same store, as a process that restores its content does. It records
// every request it receives and every response it sends, for the checks that do
// not depend on the client.
type xdsServer struct {
	st   *store.Store
	addr string
	log  *wireLog
	// opts configure every incarnation.
	opts stream.Options

	mu sync.Mutex
	// srv and g are the running incarnation; nil while stopped.
	srv *stream.Server
	g   *grpc.Server
	// generation counts incarnations, from 1.
	generation int
	cc         *grpc.ClientConn
	// trap, when armed, breaks the stream of the next request it matches
	// (breakStreamOn).
	trap *streamTrap
}

// streamTrap is an armed breakStreamOn.
type streamTrap struct {
	match func(*discoveryv3.DiscoveryRequest) bool
	// fired is closed when the trap has broken a stream; request is then the
	// request that broke it.
	fired   chan struct{}
	request wireRequest
}

// startServer starts a leanxds server on a free port of 127.0.0.1. It stops when
// the test ends.
func startServer(t testing.TB) *xdsServer { return startServerWith(t, stream.Options{}) }

// startServerWith starts a server configured with opts (its Logger and Hooks are
// the suite's).
func startServerWith(t testing.TB, opts stream.Options) *xdsServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &xdsServer{st: store.New(), addr: lis.Addr().String(), log: &wireLog{}, opts: opts}
	s.serve(lis)
	t.Cleanup(func() {
		s.mu.Lock()
		cc := s.cc
		s.mu.Unlock()
		if cc != nil {
			_ = cc.Close()
		}
		s.stop()
	})
	return s
}

func (s *xdsServer) serve(lis net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation++
	gen := s.generation
	opts := s.opts
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Hooks = s.log.hooks(gen)
	srv := stream.New(s.st, opts)
	g := grpc.NewServer(stream.ServerOption(), grpc.ChainStreamInterceptor(s.log.interceptor(gen), s.trapInterceptor))
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	s.srv, s.g = srv, g
}

// breakStreamOn arms a trap: the next SotW request that match accepts, on any
// stream, ends its stream with Unavailable before the server sees it, as a
// connection that breaks just as the request arrives. The request is in the log
// all the same. The returned func waits, up to waitFor, for the trap to fire and
// returns the request that fired it.
func (s *xdsServer) breakStreamOn(t testing.TB, match func(*discoveryv3.DiscoveryRequest) bool) (fired func() wireRequest) {
	trap := &streamTrap{match: match, fired: make(chan struct{})}
	s.mu.Lock()
	s.trap = trap
	s.mu.Unlock()
	return func() wireRequest {
		t.Helper()
		select {
		case <-trap.fired:
			return trap.request
		case <-time.After(waitFor):
			t.Fatalf("no request broke a stream within %s", waitFor)
			return wireRequest{}
		}
	}
}

// trapInterceptor lets the armed trap look at every SotW request a stream
// receives. It runs inside the log's interceptor, so the log records the request
// that breaks a stream.
func (s *xdsServer) trapInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &trappedStream{ServerStream: ss, srv: s})
}

type trappedStream struct {
	grpc.ServerStream
	srv *xdsServer
}

func (ts *trappedStream) RecvMsg(m any) error {
	if err := ts.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	req, ok := m.(*discoveryv3.DiscoveryRequest)
	if !ok {
		return nil
	}
	s := ts.srv
	s.mu.Lock()
	trap := s.trap
	if trap == nil || !trap.match(req) {
		s.mu.Unlock()
		return nil
	}
	s.trap = nil // one stream only
	s.mu.Unlock()
	if rec, ok := ts.ServerStream.(*recordingStream); ok {
		trap.request = rec.last
	}
	close(trap.fired)
	return status.Error(codes.Unavailable, "conformance: the stream breaks as this request arrives")
}

// stop ends every stream (clients see Unavailable and reconnect) and closes the
// listener.
func (s *xdsServer) stop() {
	s.mu.Lock()
	srv, g := s.srv, s.g
	s.srv, s.g = nil, nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		g.Stop()
	}
}

// start starts a new incarnation on the same address, over the same store.
func (s *xdsServer) start(t testing.TB) {
	t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the old listener's port is free at once; retry briefly in case
		if lis, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(lis)
	// A fresh client connection: the old one may be backing off after the stop.
	s.mu.Lock()
	old := s.cc
	s.cc = nil
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// conn returns a client connection to the server, for the scripted clients.
func (s *xdsServer) conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc == nil {
		cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("dial %s: %v", s.addr, err)
		}
		s.cc = cc
	}
	return s.cc
}

func (s *xdsServer) commit(t testing.TB, changes ...store.Change) {
	t.Helper()
	if _, err := s.st.Commit(changes...); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// streams returns the status of the running incarnation's streams.
func (s *xdsServer) streams() []stream.StreamStatus {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Streams()
}

// status waits until a stream of node id satisfies cond and returns it; it fails
// the test after waitFor with what the server holds.
func (s *xdsServer) status(t testing.TB, id string, cond func(stream.StreamStatus) bool) stream.StreamStatus {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		for _, st := range s.streams() {
			if st.NodeID == id && (cond == nil || cond(st)) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream of node %q in the expected state within %s; streams: %s", id, waitFor, describeStreams(s.streams()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func describeStreams(ss []stream.StreamStatus) string {
	out := ""
	for _, s := range ss {
		out += "\n  " + s.NodeID + " (" + s.Variant + ")"
		for _, ts := range s.Types {
			out += "\n    " + protocol.Short(ts.TypeURL) + " names=" + join(ts.Names) + " sent=" + ts.VersionSent + " acked=" + ts.VersionACKed
			if ts.LastNACK != nil {
				out += " nack=" + ts.LastNACK.Message
			}
		}
	}
	if out == "" {
		return "none"
	}
	return out
}

func typeStatus(s stream.StreamStatus, typeURL string) stream.TypeStatus {
	for _, ts := range s.Types {
		if ts.TypeURL == typeURL {
			return ts
		}
	}
	return stream.TypeStatus{}
}

// wireLog records what crossed the wire, for every incarnation of a server.
type wireLog struct {
	mu        sync.Mutex
	requests  []wireRequest
	responses []wireResponse
	calls     int
}

// wireRequest is one request as the client sent it.
type wireRequest struct {
	generation int
	// call numbers the gRPC stream within the log; Node is the node of its first
	// request.
	call int
	at   time.Time
	node string
	// hasNode says whether this request carried the Node itself.
	hasNode bool
	sotw    *discoveryv3.DiscoveryRequest
	delta   *discoveryv3.DeltaDiscoveryRequest
}

func (r wireRequest) typeURL() string {
	if r.sotw != nil {
		return r.sotw.GetTypeUrl()
	}
	return r.delta.GetTypeUrl()
}

// wireResponse is one response as the server sent it.
type wireResponse struct {
	generation int
	at         time.Time
	node       string
	typeURL    string
	version    string
	nonce      string
	names      []string
	versions   map[string]string
	removed    []string
}

// interceptor records every request of every stream of an incarnation.
func (l *wireLog) interceptor(gen int) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		l.mu.Lock()
		l.calls++
		call := l.calls
		l.mu.Unlock()
		return handler(srv, &recordingStream{ServerStream: ss, log: l, gen: gen, call: call})
	}
}

type recordingStream struct {
	grpc.ServerStream
	log  *wireLog
	gen  int
	call int
	node string
	// last is the request received last, as recorded.
	last wireRequest
}

func (r *recordingStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if err != nil {
		return err
	}
	w := wireRequest{generation: r.gen, call: r.call, at: time.Now()}
	var n *corev3.Node
	switch req := m.(type) {
	case *discoveryv3.DiscoveryRequest:
		w.sotw = proto.Clone(req).(*discoveryv3.DiscoveryRequest)
		n = req.GetNode()
	case *discoveryv3.DeltaDiscoveryRequest:
		w.delta = proto.Clone(req).(*discoveryv3.DeltaDiscoveryRequest)
		n = req.GetNode()
	default:
		return nil
	}
	if n != nil {
		w.hasNode = true
		if r.node == "" {
			r.node = n.GetId()
		}
	}
	w.node = r.node
	r.last = w
	r.log.mu.Lock()
	r.log.requests = append(r.log.requests, w)
	r.log.mu.Unlock()
	return nil
}

// hooks records every response of an incarnation.
func (l *wireLog) hooks(gen int) stream.Hooks {
	return stream.Hooks{
		Response: func(info stream.StreamInfo, r *stream.Response, _ time.Duration) {
			w := wireResponse{generation: gen, at: time.Now(), node: info.NodeID, typeURL: r.TypeURL,
				version: r.Version, nonce: r.Nonce, removed: slices.Clone(r.Removed), versions: map[string]string{}}
			for i, e := range r.Resources {
				name := r.ResourceName(i) // X4: as the client spelled it, in delta
				w.names = append(w.names, name)
				w.versions[name] = e.Version
			}
			l.mu.Lock()
			l.responses = append(l.responses, w)
			l.mu.Unlock()
		},
	}
}

// requestsOf returns the requests node sent, in order.
func (l *wireLog) requestsOf(node string) []wireRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []wireRequest
	for _, r := range l.requests {
		if r.node == node {
			out = append(out, r)
		}
	}
	return out
}

// responsesTo returns the responses sent to node since (inclusive), in order.
func (l *wireLog) responsesTo(node string, since time.Time) []wireResponse {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []wireResponse
	for _, r := range l.responses {
		if r.node == node && !r.at.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

// quietFor waits d and returns the responses sent to node meanwhile.
func (l *wireLog) quietFor(ctx context.Context, node string, d time.Duration) []wireResponse {
	since := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return l.responsesTo(node, since)
}

func join(ss []string) string {
	out := "["
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out + "]"
}

// transcript renders what node sent and was sent, in order, for failure messages.
func (l *wireLog) transcript(node string) string {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for _, r := range l.requestsOf(node) {
		var text string
		if r.sotw != nil {
			q := r.sotw
			text = fmt.Sprintf("→ %s names=%v version=%q nonce=%q", shortType(q.GetTypeUrl()), q.GetResourceNames(), q.GetVersionInfo(), q.GetResponseNonce())
			if q.GetErrorDetail() != nil {
				text += fmt.Sprintf(" NACK %d %q", q.GetErrorDetail().GetCode(), q.GetErrorDetail().GetMessage())
			}
		} else {
			q := r.delta
			text = fmt.Sprintf("→ %s subscribe=%v unsubscribe=%v initial=%v nonce=%q", shortType(q.GetTypeUrl()),
				q.GetResourceNamesSubscribe(), q.GetResourceNamesUnsubscribe(), q.GetInitialResourceVersions(), q.GetResponseNonce())
			if q.GetErrorDetail() != nil {
				text += fmt.Sprintf(" NACK %d %q", q.GetErrorDetail().GetCode(), q.GetErrorDetail().GetMessage())
			}
		}
		lines = append(lines, line{r.at, fmt.Sprintf("[server %d, stream %d] %s", r.generation, r.call, text)})
	}
	for _, r := range l.responsesTo(node, time.Time{}) {
		text := fmt.Sprintf("← %s %v version=%q nonce=%q", shortType(r.typeURL), r.names, r.version, r.nonce)
		if len(r.removed) > 0 {
			text += fmt.Sprintf(" removed=%v", r.removed)
		}
		lines = append(lines, line{r.at, fmt.Sprintf("[server %d] %s", r.generation, text)})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	var out strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&out, "  %s %s\n", l.at.Format("15:04:05.000000"), l.text)
	}
	return out.String()
}
