package stream

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

// Options configure a Server. The zero value serves scopes by node.cluster, falls
// back to the default scope, and logs with slog.Default().
type Options struct {
	// ScopeOf maps a node to its scope; nil means ScopeByCluster.
	ScopeOf ScopeFunc
	// NoDefaultScope turns off the fallback of a node whose scope holds nothing to
	// DefaultScope: such a node is then served its own, empty, scope. The
	// fallback is decided when a stream opens, against the view the node is
	// served (with a Router, maybe an earlier one); a stream that fell back
	// ends with codes.Unavailable once that view holds its scope and the
	// scope is woken (Server.Wake), so that its node reconnects to it.
	NoDefaultScope bool
	// Limits bound what one request may ask.
	Limits Limits
	// FrameCacheBytes bounds the memory of the encoded responses the server
	// keeps to share between streams sending the same content; 0 means
	// DefaultFrameCacheBytes (64 MiB), and a negative value keeps none (every
	// response is then encoded for its own stream). A response is only kept
	// while the store table it was made from is current or held by a stream.
	FrameCacheBytes int
	// Hooks observe streams for metrics and logs; they run beside the logging ones.
	Hooks Hooks
	// Logger receives stream events: debug for the routine, warn for NACKs. nil
	// means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Router, when set, decides which view of the store each node is served
	// (see Router); nil serves every node the store's current view.
	Router Router
	// Authorize, when set, vets the node of each stream's first request, with the
	// stream's context (its peer and TLS state): an error refuses the stream with
	// codes.PermissionDenied and the error's text. Use it to make sure a client
	// only ever reads its own scope.
	Authorize func(ctx context.Context, node *corev3.Node) error

	// What one peer may hold of the server. Each is off when negative.

	// FirstRequestTimeout ends a stream that sends no request within it of
	// opening, with codes.DeadlineExceeded: until its first request names its
	// node (R2) a stream is served nothing, yet holds two goroutines and a
	// connection's stream slot. 0 means 30s.
	FirstRequestTimeout time.Duration
	// SendTimeout ends a stream whose client has taken none of a response for
	// that long (it stopped reading, while its HTTP/2 layer still answers
	// pings): the stream's connection is closed, since nothing else ends a send
	// that gRPC's flow control holds. It needs the connection to have been
	// accepted by Listener. 0 means 1m.
	SendTimeout time.Duration
	// MaxConns is the most connections Listener serves at once; one more is
	// closed as soon as it is accepted. 0 means 10,000.
	MaxConns int
	// MaxStreamsPerConn is the most streams one connection may hold at once,
	// announced to the client in HTTP/2 SETTINGS by GRPCOptions: a client
	// queues more, and gRPC refuses the streams of one that does not
	// (REFUSED_STREAM). 0 means 100.
	MaxStreamsPerConn int
}

// firstRequestTimeout, sendTimeout, maxConns and maxStreamsPerConn resolve the
// options' defaults; 0 is off for the durations and no limit for the counts.
func (o *Options) firstRequestTimeout() time.Duration {
	return orDefault(o.FirstRequestTimeout, 30*time.Second)
}
func (o *Options) sendTimeout() time.Duration { return orDefault(o.SendTimeout, time.Minute) }
func (o *Options) maxConns() int              { return orDefault(o.MaxConns, 10_000) }
func (o *Options) maxStreamsPerConn() int     { return orDefault(o.MaxStreamsPerConn, 100) }

func orDefault[T int | time.Duration](v, def T) T {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// Server serves the resources of a store to xDS clients. Create it with New and
// register it on a gRPC server with Register.
type Server struct {
	store  *store.Store
	opts   Options
	hooks  Hooks
	frames *frameCache
	// caches are what the state machines of the server's streams share.
	caches *machine.Caches
	// epoch is when the server was made: streams keep the times their timeouts
	// count from as durations since it, on the monotonic clock.
	epoch time.Time
	// conns are the connections Listener accepted.
	conns connSet

	nextID atomic.Uint64
	mu     sync.Mutex
	// streams holds every stream from its start, those awaiting their first
	// request too, so that Shutdown reaches them all.
	streams map[uint64]*conn
	// closing is set by Shutdown, under mu: new streams are refused, and a
	// stream about to send ends instead.
	closing atomic.Bool
	// progress tells WaitFor that a stream's standing may have changed.
	progress progress

	// awaiting counts the streams that have sent no request yet.
	awaiting atomic.Int64
	// errNoFirstRequest ends a stream that sent no request in time.
	errNoFirstRequest error
	// firstRequestTimeouts and sendTimeouts count the streams those timeouts ended.
	firstRequestTimeouts atomic.Uint64
	sendTimeouts         atomic.Uint64
}

// New returns a server of st's resources.
func New(st *store.Store, opts Options) *Server {
	if opts.ScopeOf == nil {
		opts.ScopeOf = ScopeByCluster
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{
		store:   st,
		opts:    opts,
		hooks:   logHooks(opts.Logger).join(opts.Hooks),
		frames:  newFrameCache(frameCacheBytes(opts.FrameCacheBytes)),
		caches:  machine.NewCaches(),
		epoch:   time.Now(),
		conns:   connSet{byAddr: make(map[string]*trackedConn)},
		streams: make(map[uint64]*conn),
		errNoFirstRequest: status.Errorf(codes.DeadlineExceeded,
			"no request within %s of opening the stream: its first request must name the node (R2)", opts.firstRequestTimeout()),
	}
}

func frameCacheBytes(n int) int {
	if n == 0 {
		return DefaultFrameCacheBytes
	}
	return n
}

// Register registers the aggregated service (ADS) and every per-type discovery
// service on g. Create g with GRPCOptions, and serve it on Listener, for the
// server's limits to hold:
//
//	srv := stream.New(st, stream.Options{})
//	g := grpc.NewServer(srv.GRPCOptions()...)
//	srv.Register(g)
//	err := g.Serve(srv.Listener(lis))
func (s *Server) Register(g *grpc.Server) {
	for _, d := range s.serviceDescs() {
		g.RegisterService(d, s)
	}
}

// GRPCOptions returns the gRPC server options the server needs: the codec of
// ServerOption, which shares response frames between streams without a copy
// (and request names between them, through the server's caches), and the limit
// of streams per connection (Options.MaxStreamsPerConn).
func (s *Server) GRPCOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{codecOption(s.caches)}
	if n := s.opts.maxStreamsPerConn(); n > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(n)))
	}
	return opts
}

// since returns the time since the server's epoch, on the monotonic clock.
func (s *Server) since() int64 { return int64(time.Since(s.epoch)) }

// scopeFor resolves a node's scope against view v (see Options.NoDefaultScope).
func (s *Server) scopeFor(v store.View, scope string) string {
	if !s.opts.NoDefaultScope && !v.HasScope(scope) {
		return DefaultScope
	}
	return scope
}

// add records a new stream, unless the server is shutting down.
func (s *Server) add(c *conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return status.Error(codes.Unavailable, "server shutting down: connect to another")
	}
	s.streams[c.info.ID] = c
	s.awaiting.Add(1)
	return nil
}

// Shutdown ends every stream with codes.Unavailable, so that clients reconnect
// (to another replica, or to this one once it is back), and refuses new ones.
// It waits for none of them: streams that have sent no request yet end at once,
// and a stream whose client may have stopped reading (it is being sent a
// response, or has not answered one) has its connection closed, when Listener
// accepted it: its status would otherwise wait behind what the client does not
// read. Call it before grpc.Server.GracefulStop, which waits for streams to end.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.closing.Store(true)
	s.mu.Unlock()
	for _, c := range s.all() {
		c.stop()
	}
}

// remove forgets a stream that ended.
func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.streams, c.info.ID)
	s.mu.Unlock()
	if !c.opened.Load() {
		s.awaiting.Add(-1)
	} else {
		s.progress.signal() // its node may leave the set WaitFor waits on
	}
}

// all returns every stream.
func (s *Server) all() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.streams))
	for _, c := range s.streams {
		conns = append(conns, c)
	}
	return conns
}

// Streams returns the status of every stream whose first request named its node,
// ordered by ID.
func (s *Server) Streams() []StreamStatus {
	conns := s.all()
	out := make([]StreamStatus, 0, len(conns))
	for _, c := range conns {
		if c.opened.Load() {
			out = append(out, c.status())
		}
	}
	slices.SortFunc(out, func(a, b StreamStatus) int { return int(a.ID) - int(b.ID) })
	return out
}

// AwaitingFirstRequest returns the streams that have sent no request yet,
// ordered by ID: they have an ID, a variant, a service and a start, but no node
// or scope. Options.FirstRequestTimeout ends them.
func (s *Server) AwaitingFirstRequest() []StreamInfo {
	var out []StreamInfo
	for _, c := range s.all() {
		if !c.opened.Load() {
			out = append(out, *c.shownInfo.Load())
		}
	}
	slices.SortFunc(out, func(a, b StreamInfo) int { return int(a.ID) - int(b.ID) })
	return out
}

// LimitStats are what the server's connection and stream limits see, for
// metrics.
type LimitStats struct {
	// Conns are the connections open that Listener accepted.
	Conns int
	// ConnsRefused counts the connections closed at once because MaxConns were
	// open.
	ConnsRefused uint64
	// AwaitingFirstRequest are the streams open that have sent no request yet.
	AwaitingFirstRequest int
	// FirstRequestTimeouts counts the streams ended by FirstRequestTimeout.
	FirstRequestTimeouts uint64
	// SendTimeouts counts the streams ended by SendTimeout; each closed its
	// connection.
	SendTimeouts uint64
}

// LimitStats returns the figures of the server's limits now.
func (s *Server) LimitStats() LimitStats {
	s.conns.mu.Lock()
	open := s.conns.open
	s.conns.mu.Unlock()
	return LimitStats{
		Conns:                open,
		ConnsRefused:         s.conns.refused.Load(),
		AwaitingFirstRequest: int(s.awaiting.Load()),
		FirstRequestTimeouts: s.firstRequestTimeouts.Load(),
		SendTimeouts:         s.sendTimeouts.Load(),
	}
}
