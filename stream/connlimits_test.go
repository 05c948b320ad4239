package stream_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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
