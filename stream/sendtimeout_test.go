package stream_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// heavyClusters returns n clusters of generation gen, each about 1 KiB, so that
// one response is larger than a stream's flow-control window, while their
// names, which the store's change log keeps, are short.
func heavyClusters(n, gen int) []store.Change {
	var out []store.Change
	for i := range n {
		name := fmt.Sprintf("heavy-%03d", i)
		out = append(out, store.Set(scope, xdstest.Cluster(name, xdstest.WithServiceName(strings.Repeat("s", 1000)+name),
			xdstest.WithConnectTimeout(time.Duration(gen+1)*time.Second))))
	}
	return out
}

// stalledClient opens an ADS stream on a connection of its own with small flow
// control windows, sends its first request for every cluster, and never reads.
// It returns the stream and the client's connection.
func stalledClient(t testing.TB, addr string) (grpc.ClientStream, *grpc.ClientConn) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	s, err := cc.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, adsMethod)
	require.NoError(t, err)
	require.NoError(t, s.SendMsg(&discoveryv3.DiscoveryRequest{Node: node("stalled", scope), TypeUrl: cds}))
	return s, cc
}

// A client whose HTTP/2 layer is alive but which never reads blocks its
// stream's sends in gRPC's flow control: past SendTimeout the stream ends with
// DeadlineExceeded and its connection is closed, the only way to end a send
// gRPC holds. Other clients are served throughout, and once the stalled client
// is gone the server holds what it held before it came.
func TestSendTimeoutEndsStalledStream(t *testing.T) {
	closed := make(chan error, 1)
	e := newLimitedEnv(t, func(o *stream.Options) {
		o.SendTimeout = 300 * time.Millisecond
		o.Hooks.StreamClosed = func(info stream.StreamInfo, err error) {
			if info.NodeID == "stalled" {
				closed <- err
			}
		}
	})
	// 200 KiB of clusters: more than the client's window (64 KiB) and gRPC's
	// send quota of a stream (64 KiB) together, so the send after them blocks.
	e.commit(t, heavyClusters(200, 0)...)
	// A listener now, so that the descriptors of its types are already loaded
	// when the baseline is measured.
	e.commit(t, store.Set(scope, xdstest.Listener("internal", 8081, "routes")))
	healthy := conv.ADS(t, e.cc, node("healthy", scope))
	healthy.Request(cds)
	healthy.ExpectResponse()
	healthy.ACK()
	healthy.Request(lds)
	healthy.ExpectResponse()
	healthy.ACK()
	before := measure()

	stalled, stalledCC := stalledClient(t, e.addr)
	e.status(t, "stalled", func(s stream.StreamStatus) bool { return typeStatus(s, cds).VersionSent != "" })
	during := measure()
	// The client asks for more, and reads nothing: the answer's send blocks.
	require.NoError(t, stalled.SendMsg(&discoveryv3.DiscoveryRequest{TypeUrl: lds}))
	var err error
	select {
	case err = <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the stalled stream never ended")
	}
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "send timeout")
	assert.EqualValues(t, 1, e.srv.LimitStats().SendTimeouts)
	for _, s := range e.srv.Streams() {
		assert.NotEqual(t, "stalled", s.NodeID)
	}
	// The client finds its connection closed once it reads what was sent.
	assert.Equal(t, codes.Unavailable, status.Code(ended(t, stalled)))
	require.NoError(t, stalledCC.Close()) // the client leaves

	e.commit(t, store.Set(scope, xdstest.Listener("public", 8080, "routes")))
	healthy.ExpectResponse(conv.Names("internal", "public"))
	healthy.ACK()
	eventually(t, "the stalled connection to be forgotten", func() bool { return e.srv.LimitStats().Conns == 1 })
	var after usage
	eventually(t, "goroutines back to their number before", func() bool {
		after = measure()
		return after.goroutines <= before.goroutines+2
	})
	t.Logf("before the stalled client: %v; while it stalled: %v; after: %v", before, during, after)
	assert.LessOrEqual(t, after.heap, before.heap+200<<10, "heap before %d, after %d", before.heap, after.heap)
}

// Shutdown does not wait on a client that stopped reading: it closes the
// connection of a stream whose response is unanswered, whose status would
// otherwise wait behind the response in gRPC's buffers, and GracefulStop
// returns.
func TestShutdownDoesNotWaitOnStalledStream(t *testing.T) {
	e := newLimitedEnv(t, func(o *stream.Options) { o.SendTimeout = -1 })
	e.commit(t, heavyClusters(100, 0)...)
	healthy := conv.ADS(t, e.cc, node("healthy", scope))
	healthy.Request(cds)
	healthy.ExpectResponse()
	healthy.ACK()
	stalledClient(t, e.addr)
	e.status(t, "stalled", func(s stream.StreamStatus) bool { return typeStatus(s, cds).VersionSent != "" })

	e.srv.Shutdown()
	stopped := make(chan struct{})
	go func() {
		e.g.GracefulStop()
		close(stopped)
	}()
	healthy.ExpectError(codes.Unavailable)
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("GracefulStop is still waiting for the stalled stream")
	}
	assert.Empty(t, e.srv.Streams())
	assert.Zero(t, e.srv.LimitStats().Conns)
}
