package conformance_test

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// server is the leanxds server a scripted conversation talks to. A conversation
// written against it runs twice: over the wire, with the scripted client on a
// gRPC connection to 127.0.0.1 (*xdsServer, for scripted-sotw and
// scripted-delta), and in memory, with the same client stepping the server's
// state machine directly (*memoryServer, for memory-sotw and memory-delta),
// where every ExpectNothing is exact and instant.
type server interface {
	// commit commits changes to the server's store.
	commit(t testing.TB, changes ...store.Change)
	// view is the store's current view.
	view() store.View
	// ads and deltaADS open an aggregated stream for a client identifying as
	// node; typed and deltaTyped the per-type stream of typeURL.
	ads(t testing.TB, node *corev3.Node) *conv.SotW
	deltaADS(t testing.TB, node *corev3.Node) *conv.Delta
	typed(t testing.TB, typeURL string, node *corev3.Node) *conv.SotW
	deltaTyped(t testing.TB, typeURL string, node *corev3.Node) *conv.Delta
	// status returns a stream of node id for which cond holds, failing the test
	// otherwise: over the wire it waits up to waitFor for the server to get
	// there; in memory the server is there already or never will be.
	status(t testing.TB, id string, cond func(stream.StreamStatus) bool) stream.StreamStatus
	// stop ends every stream with Unavailable, as a server shutting down does;
	// start starts a new server over the same store, as a restarted process
	// that restores its content.
	stop()
	start(t testing.TB)
	// applied returns where the nodes sel selects stand against revision rev
	// once want holds of it, failing the test otherwise (see applied_test.go).
	applied(t testing.TB, rev uint64, sel stream.Selector, want func(*stream.Applied) bool) stream.Applied
	// wake makes the streams of scope read the store again (Server.Wake).
	wake(scope string)
}

// serverFor returns a new server configured with opts for a scripted
// conversation of client c.
func serverFor(t *testing.T, c client, opts stream.Options) server {
	if c.inMemory() {
		return startMemory(t, opts)
	}
	return startServerWith(t, opts)
}

// The wire server's side of server.

// wireQuiet is how long a conversation over the wire listens for a response
// that should not come (conv.WithQuiet). Shorter than conv's default: every
// conversation also runs in memory, where "nothing is sent" is checked exactly,
// so over the wire ExpectNothing only checks that the transport adds nothing.
const wireQuiet = 100 * time.Millisecond

func (s *xdsServer) view() store.View { return s.st.View() }

func (s *xdsServer) ads(t testing.TB, node *corev3.Node) *conv.SotW {
	t.Helper()
	return conv.ADS(t, s.conn(t), node, conv.WithQuiet(wireQuiet))
}

func (s *xdsServer) deltaADS(t testing.TB, node *corev3.Node) *conv.Delta {
	t.Helper()
	return conv.DeltaADS(t, s.conn(t), node, conv.WithQuiet(wireQuiet))
}

func (s *xdsServer) typed(t testing.TB, typeURL string, node *corev3.Node) *conv.SotW {
	t.Helper()
	return conv.Typed(t, s.conn(t), typeURL, node, conv.WithQuiet(wireQuiet))
}

func (s *xdsServer) deltaTyped(t testing.TB, typeURL string, node *corev3.Node) *conv.Delta {
	t.Helper()
	return conv.DeltaTyped(t, s.conn(t), typeURL, node, conv.WithQuiet(wireQuiet))
}

// memoryServer is a server whose streams are its state machines driven in memory
// (conv.Memory), over a store of its own.
type memoryServer struct {
	st   *store.Store
	opts stream.Options
	// m serves the streams of the running incarnation.
	m *conv.Memory
}

func startMemory(t testing.TB, opts stream.Options) *memoryServer {
	s := &memoryServer{st: store.New(), opts: opts}
	s.start(t)
	return s
}

func (s *memoryServer) commit(t testing.TB, changes ...store.Change) {
	t.Helper()
	if _, err := s.st.Commit(changes...); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func (s *memoryServer) view() store.View { return s.st.View() }

func (s *memoryServer) ads(t testing.TB, node *corev3.Node) *conv.SotW {
	t.Helper()
	return s.m.ADS(t, node)
}

func (s *memoryServer) deltaADS(t testing.TB, node *corev3.Node) *conv.Delta {
	t.Helper()
	return s.m.DeltaADS(t, node)
}

func (s *memoryServer) typed(t testing.TB, typeURL string, node *corev3.Node) *conv.SotW {
	t.Helper()
	return s.m.Typed(t, typeURL, node)
}

func (s *memoryServer) deltaTyped(t testing.TB, typeURL string, node *corev3.Node) *conv.Delta {
	t.Helper()
	return s.m.DeltaTyped(t, typeURL, node)
}

func (s *memoryServer) status(t testing.TB, id string, cond func(stream.StreamStatus) bool) stream.StreamStatus {
	t.Helper()
	for _, st := range s.m.Streams() {
		if st.NodeID == id && (cond == nil || cond(st)) {
			return st
		}
	}
	t.Fatalf("no stream of node %q in the expected state; streams: %s", id, describeStreams(s.m.Streams()))
	return stream.StreamStatus{}
}

func (s *memoryServer) stop() { s.m.Shutdown() }

func (s *memoryServer) start(testing.TB) { s.m = conv.NewMemory(s.st, s.opts) }
