package stream_test

import (
	"net"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

const adsMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

// limitedEnv is a server served as the leanxds binary serves it, with its limits:
// a gRPC server made with GRPCOptions, on a listener wrapped by Listener.
type limitedEnv struct {
	*env
	g    *grpc.Server
	addr string
}

func newLimitedEnv(t testing.TB, opts ...func(*stream.Options)) *limitedEnv {
	t.Helper()
	var o stream.Options
	for _, f := range opts {
		f(&o)
	}
	st := store.New()
	srv := stream.New(st, o)
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(srv.Listener(lis)) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cc.Close()
		g.Stop()
	})
	return &limitedEnv{env: &env{st: st, srv: srv, cc: cc}, g: g, addr: lis.Addr().String()}
}

// silentStream opens an ADS stream on its own connection and sends nothing.
func silentStream(t testing.TB, addr string) grpc.ClientStream {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	s, err := cc.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, adsMethod)
	require.NoError(t, err)
	return s
}

// ended waits, a bounded while, for s to end, and returns how.
func ended(t testing.TB, s grpc.ClientStream) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		for {
			if err := s.RecvMsg(new(discoveryv3.DiscoveryResponse)); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end")
		return nil
	}
}

// eventually waits, a bounded while, for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A stream that sends no request is ended once FirstRequestTimeout has passed,
// with DeadlineExceeded and a message that says why (R2: the first request names
// the node). A stream that sent its first request in time is not.
func TestFirstRequestTimeout(t *testing.T) {
	e := newLimitedEnv(t, func(o *stream.Options) { o.FirstRequestTimeout = 300 * time.Millisecond })
	e.commit(t, clusters("a")...)
	healthy := conv.ADS(t, e.cc, edge)
	healthy.Request(cds)
	healthy.ExpectResponse(conv.Names("a"))
	healthy.ACK()

	// Opened after the healthy stream, so its timeout falls after the healthy
	// stream's would have.
	silent := silentStream(t, e.addr)
	err := ended(t, silent)
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "no request within 300ms of opening the stream")
	assert.EqualValues(t, 1, e.srv.LimitStats().FirstRequestTimeouts)

	e.commit(t, clusters("b")...)
	healthy.ExpectResponse(conv.Names("a", "b"))
	assert.Len(t, e.srv.Streams(), 1)
}

// A stream that has sent no request yet is listed, and counted, as awaiting its
// first request; its first request makes it an ordinary stream.
func TestAwaitingFirstRequest(t *testing.T) {
	e := newLimitedEnv(t)
	e.commit(t, clusters("a")...)
	s := silentStream(t, e.addr)
	eventually(t, "the stream to be awaiting its first request", func() bool { return len(e.srv.AwaitingFirstRequest()) == 1 })
	info := e.srv.AwaitingFirstRequest()[0]
	assert.Equal(t, "sotw", info.Variant)
	assert.Equal(t, "ads", info.Service)
	assert.False(t, info.ConnectedAt.IsZero())
	assert.Empty(t, e.srv.Streams(), "a stream without a node is not among the clients")
	assert.Equal(t, 1, e.srv.LimitStats().AwaitingFirstRequest)

	require.NoError(t, s.SendMsg(&discoveryv3.DiscoveryRequest{Node: edge, TypeUrl: cds}))
	require.NoError(t, s.RecvMsg(new(discoveryv3.DiscoveryResponse)))
	assert.Empty(t, e.srv.AwaitingFirstRequest())
	assert.Zero(t, e.srv.LimitStats().AwaitingFirstRequest)
	require.Len(t, e.srv.Streams(), 1)
	assert.Equal(t, info.ID, e.srv.Streams()[0].ID)
}

// Shutdown ends a stream that has sent no request at once, with Unavailable,
// like every other stream.
func TestShutdownEndsStreamsAwaitingFirstRequest(t *testing.T) {
	e := newLimitedEnv(t, func(o *stream.Options) { o.FirstRequestTimeout = -1 })
	s := silentStream(t, e.addr)
	eventually(t, "the stream to be awaiting its first request", func() bool { return len(e.srv.AwaitingFirstRequest()) == 1 })
	e.srv.Shutdown()
	err := ended(t, s)
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Zero(t, e.srv.LimitStats().AwaitingFirstRequest)
}

// The server announces MaxStreamsPerConn in its HTTP/2 SETTINGS, so that a
// client queues its extra streams; one that opens them anyway has them refused.
func TestMaxStreamsPerConn(t *testing.T) {
	e := newLimitedEnv(t, func(o *stream.Options) { o.MaxStreamsPerConn = 5 })
	c := dialH2(t, e.addr)
	for range 8 {
		c.open(t, adsMethod)
	}
	c.waitFor(t, "3 streams refused", func(c *h2Client) bool { return c.refused == 3 })
	c.mu.Lock()
	assert.EqualValues(t, 5, c.settings[http2.SettingMaxConcurrentStreams])
	c.mu.Unlock()
	assert.Equal(t, 5, e.srv.LimitStats().AwaitingFirstRequest)
}

// Past MaxConns connections, a new one is closed as soon as it is accepted; once
// one closes, a new one is served again.
func TestMaxConns(t *testing.T) {
	e := newLimitedEnv(t, func(o *stream.Options) { o.MaxConns = 2 })
	e.commit(t, clusters("a")...)
	first := conv.ADS(t, e.cc, edge) // e.cc is the first connection
	first.Request(cds)
	first.ExpectResponse(conv.Names("a"))
	second := dialH2(t, e.addr)
	second.waitFor(t, "the server's settings", func(c *h2Client) bool { return c.settings != nil })
	assert.Equal(t, 2, e.srv.LimitStats().Conns)

	third := dialH2(t, e.addr)
	third.waitFor(t, "the third connection to be closed", func(c *h2Client) bool { return c.readErr != nil })
	assert.Nil(t, third.settings, "the refused connection was served")
	assert.EqualValues(t, 1, e.srv.LimitStats().ConnsRefused)

	_ = second.conn.Close()
	eventually(t, "the second connection to be forgotten", func() bool { return e.srv.LimitStats().Conns == 1 })
	fourth := dialH2(t, e.addr)
	fourth.waitFor(t, "the server's settings", func(c *h2Client) bool { return c.settings != nil })
	assert.Equal(t, 2, e.srv.LimitStats().Conns)
	first.ACK()
	e.commit(t, clusters("b")...)
	first.ExpectResponse(conv.Names("a", "b"))
}

// usage is what the process holds: goroutines, and the Go heap after two
// collections (the second frees what sync.Pool's victim cache kept).
type usage struct {
	goroutines int
	heap       uint64
}

func measure() usage {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return usage{goroutines: runtime.NumGoroutine(), heap: s[0].Value.Uint64()}
}

func (u usage) String() string {
	return itoa(u.goroutines) + " goroutines, " + itoa(int(u.heap>>10)) + " KiB heap"
}

// A client that opens thousands of streams on one connection and sends nothing
// on them holds at most MaxStreamsPerConn of them, each for FirstRequestTimeout
// (the others are refused); once it has gone, the server holds what it held
// before it came.
func TestSilentStreamsAreBounded(t *testing.T) {
	const streams, limit = 2000, 50
	e := newLimitedEnv(t, func(o *stream.Options) {
		o.MaxStreamsPerConn = limit
		o.FirstRequestTimeout = time.Second
	})
	before := measure()

	c := dialH2(t, e.addr)
	for range streams {
		c.open(t, adsMethod)
	}
	during := measure()
	// Every stream is refused or held until it times out; the server never
	// holds more than the limit meanwhile.
	held, goroutines := 0, 0
	c.waitFor(t, "every stream to be refused or timed out", func(c *h2Client) bool {
		held = max(held, e.srv.LimitStats().AwaitingFirstRequest)
		goroutines = max(goroutines, runtime.NumGoroutine())
		return c.refused+c.statuses[itoa(int(codes.DeadlineExceeded))] == streams
	})
	t.Logf("before: %v; %d silent streams opened: %v; at most %d held, %d goroutines", before, streams, during, held, goroutines)
	assert.LessOrEqual(t, held, limit)
	// Three goroutines a stream at most (its handler, its receiver, and its
	// timer's as it fires), and a few for the connection.
	assert.LessOrEqual(t, goroutines, before.goroutines+3*limit+10)

	_ = c.conn.Close()
	eventually(t, "the connection to be forgotten", func() bool { return e.srv.LimitStats().Conns == 0 })
	var after usage
	eventually(t, "goroutines back to their number before", func() bool {
		after = measure()
		return after.goroutines <= before.goroutines+2
	})
	t.Logf("after: %v", after)
	// The server's own state is gone; what is left are the gRPC buffer pools
	// and the test's own counts (200 KiB margin).
	assert.LessOrEqual(t, after.heap, before.heap+200<<10, "heap before %d, after %d", before.heap, after.heap)
}
