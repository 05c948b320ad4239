package stream

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// scriptedStream is a grpc.ServerStream whose client is the test: RecvMsg
// returns what the test sends on recv (io.EOF once it is closed) and reports
// each call on reading; SendMsg counts responses and waits on release.
type scriptedStream struct {
	ctx     context.Context
	recv    chan *discoveryv3.DiscoveryRequest
	reading chan struct{}
	release chan struct{}
	sent    atomic.Int32
}

func (s *scriptedStream) Context() context.Context     { return s.ctx }
func (s *scriptedStream) SetHeader(metadata.MD) error  { return nil }
func (s *scriptedStream) SendHeader(metadata.MD) error { return nil }
func (s *scriptedStream) SetTrailer(metadata.MD)       {}

func (s *scriptedStream) SendMsg(any) error {
	s.sent.Add(1)
	<-s.release
	return nil
}

func (s *scriptedStream) RecvMsg(m any) error {
	s.reading <- struct{}{}
	req, ok := <-s.recv
	if !ok {
		return io.EOF
	}
	proto.Merge(m.(*discoveryv3.DiscoveryRequest), req)
	return nil
}

// S5: a store change and a request that withdraws the changed resource both
// wait while the handler is busy sending; the request is applied first, so the
// change is not pushed to a client that no longer wants it. (Before, the
// handler picked one of the two at random: 20 rounds would pass by chance once
// in a million.)
func TestS5RequestsBeforeStoreChanges(t *testing.T) {
	for round := range 20 {
		st := store.New()
		_, err := st.Commit(store.Set("s", xdstest.Endpoints("a", "10.0.0.1:80")), store.Set("s", xdstest.Endpoints("b", "10.0.0.2:80")))
		require.NoError(t, err)
		srv := New(st, Options{ScopeOf: func(*corev3.Node) string { return "s" }})
		ss := &scriptedStream{
			ctx:     context.Background(),
			recv:    make(chan *discoveryv3.DiscoveryRequest),
			reading: make(chan struct{}, 8),
			release: make(chan struct{}),
		}
		done := make(chan error, 1)
		go func() { done <- serve(srv, ss, &sotwVariant, "", "ads") }()

		<-ss.reading
		ss.recv <- &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "n"}, TypeUrl: protocol.TypeEndpoint, ResourceNames: []string{"a", "b"}}
		<-ss.reading // the first request was handed over
		waitFor(t, "its answer to be sent", func() bool { return ss.sent.Load() == 1 })
		// While the handler sends, a changes and the client drops a.
		_, err = st.Commit(store.Set("s", xdstest.Endpoints("a", "10.0.0.9:80")))
		require.NoError(t, err)
		ss.recv <- &discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeEndpoint, ResourceNames: []string{"b"}}
		<-ss.reading // the unsubscribe waits on the handler's channel
		waitFor(t, "the commit to signal the stream", func() bool { return srv.signalled() })
		close(ss.release)
		close(ss.recv)
		require.NoError(t, <-done)
		require.EqualValues(t, 1, ss.sent.Load(), "round %d: a was pushed after the client dropped it", round)
	}
}

// signalled reports whether the store has signalled the server's only stream.
func (s *Server) signalled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.streams {
		return len(c.watcher.C) > 0
	}
	return false
}

// waitFor waits, a bounded while, for cond to hold.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
