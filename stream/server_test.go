package stream_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/stream"
)

// Authorize refuses a node before it reads anything, with PermissionDenied.
func TestAuthorizeRefusesNode(t *testing.T) {
	e := newEnv(t, func(o *stream.Options) {
		o.Authorize = func(_ context.Context, n *corev3.Node) error {
			if n.GetId() != "trusted" {
				return errors.New("certificate does not name this node")
			}
			return nil
		}
	})
	e.commit(t, clusters("secret-cluster")...)
	bad := conv.ADS(t, e.cc, node("intruder", scope))
	bad.Request(cds)
	err := bad.ExpectError(codes.PermissionDenied)
	assert.Contains(t, err.Error(), "certificate does not name this node")
	good := conv.ADS(t, e.cc, node("trusted", scope))
	good.Request(cds)
	good.ExpectResponse(conv.Names("secret-cluster"))
}

// Shutdown ends every stream with Unavailable so clients reconnect elsewhere, and
// refuses new ones.
func TestShutdown(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	e.status(t, "envoy-1", nil)
	e.srv.Shutdown()
	c.ExpectError(codes.Unavailable)
	late := conv.ADS(t, e.cc, node("late", scope))
	late.Request(cds)
	late.ExpectError(codes.Unavailable)
	assert.Empty(t, e.srv.Streams())
}

// A request that does not decode ends its stream; grpc-go itself ends it, with
// Internal and a message naming the decoding error, before the handler sees it.
// Other streams are unaffected.
func TestUndecodableRequest(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	good := conv.ADS(t, e.cc, node("good", scope))
	good.Request(cds)
	good.ExpectResponse(conv.Names("a"))
	s, err := e.cc.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
	require.NoError(t, err)
	// Field 1 (node) holding bytes that are not a Node.
	require.NoError(t, s.SendMsg(wrapperspb.Bytes([]byte{0xff, 0xff, 0xff})))
	err = s.RecvMsg(new(wrapperspb.BytesValue))
	assert.Equal(t, codes.Internal, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "unmarshal")
	good.ACK()
	e.commit(t, clusters("b")...)
	good.ExpectResponse(conv.Names("a", "b"))
}

// A stream ends when its client closes its side (the stream ends with OK) or goes
// away (cancels), and leaves the server's list either way; the StreamClosed hook
// runs for each.
func TestStreamEndsWithItsClient(t *testing.T) {
	closed := make(chan string, 2)
	e := newEnv(t, func(o *stream.Options) {
		o.Hooks.StreamClosed = func(info stream.StreamInfo, _ error) { closed <- info.NodeID }
	})
	e.commit(t, clusters("a")...)
	open := func(ctx context.Context, id string) grpc.ClientStream {
		s, err := e.cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
			"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
		require.NoError(t, err)
		require.NoError(t, s.SendMsg(&discoveryv3.DiscoveryRequest{Node: node(id, scope), TypeUrl: cds}))
		require.NoError(t, s.RecvMsg(new(discoveryv3.DiscoveryResponse)))
		return s
	}
	closing := open(t.Context(), "closing")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	open(ctx, "leaving")
	require.Len(t, e.srv.Streams(), 2)

	require.NoError(t, closing.CloseSend())
	assert.ErrorIs(t, closing.RecvMsg(new(discoveryv3.DiscoveryResponse)), io.EOF, "the stream ends with OK")
	cancel()
	var ended []string
	for range 2 {
		select {
		case id := <-closed:
			ended = append(ended, id)
		case <-time.After(5 * time.Second):
			t.Fatalf("streams ended: %v, want both", ended)
		}
	}
	assert.ElementsMatch(t, []string{"closing", "leaving"}, ended)
	assert.Empty(t, e.srv.Streams())
}
