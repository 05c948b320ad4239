package conv

import (
	"context"
	"errors"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// The in-memory transport drives the server's own state machine: these tests
// check what the transport adds (instant, exact waits; responses computed at the
// store's current view; the handler's checks around the machine), not the
// protocol, which the conformance suite proves over both transports.

func memoryWith(t *testing.T, changes ...store.Change) (*store.Store, *Memory) {
	t.Helper()
	st := store.New()
	if len(changes) > 0 {
		_, err := st.Commit(changes...)
		require.NoError(t, err)
	}
	return st, NewMemory(st, stream.Options{})
}

func TestMemoryExpectResponseAtTheCurrentView(t *testing.T) {
	st, m := memoryWith(t, store.Set("edge", xdstest.Cluster("web")))
	c := m.ADS(t, testNode)
	c.Request(protocol.TypeCluster)
	_, err := st.Commit(store.Set("edge", xdstest.Cluster("api")))
	require.NoError(t, err)
	// The response is computed when the test waits for it: it holds both.
	first := c.ExpectResponse(Names("web", "api"))
	c.ACK()
	c.ExpectNothing()
	_, err = st.Commit(store.Set("edge", xdstest.Cluster("db")))
	require.NoError(t, err)
	c.ExpectResponse(VersionNot(first.Version()), Names("web", "api", "db"))
}

func TestMemoryExpectNothingFailsAtOnceOnAResponse(t *testing.T) {
	_, m := memoryWith(t, store.Set("edge", xdstest.Cluster("web")))
	got := failures(t, func(tb testing.TB) {
		c := m.ADS(tb, testNode)
		c.Request(protocol.TypeCluster, "web")
		c.ExpectNothing()
	})
	assert.Contains(t, got, "expected no response, got CDS")
	assert.Contains(t, got, "names=[web]")
}

func TestMemoryExpectResponseFailsAtOnceOnSilence(t *testing.T) {
	_, m := memoryWith(t, store.Set("edge", xdstest.Cluster("web")))
	got := failures(t, func(tb testing.TB) {
		c := m.ADS(tb, testNode)
		c.Request(protocol.TypeCluster, "web").ExpectResponse()
		c.ACK()
		c.ExpectResponse()
	})
	assert.Contains(t, got, "no response: the server has nothing to send")
	assert.Contains(t, got, "last response: CDS")
}

func TestMemoryFirstRequestWithoutNodeEndsTheStream(t *testing.T) {
	_, m := memoryWith(t, store.Set("edge", xdstest.Cluster("web")))
	c := m.ADS(t, nil)
	c.Request(protocol.TypeCluster)
	err := c.ExpectError(codes.InvalidArgument)
	assert.ErrorContains(t, err, "must carry a node (R2)")
	c.Request(protocol.TypeCluster) // a send on an ended stream is not a failure
	assert.Empty(t, m.Streams())
}

func TestMemoryPerTypeServiceFixesTheType(t *testing.T) {
	_, m := memoryWith(t, store.Set("edge", xdstest.Cluster("web")))
	c := m.Typed(t, protocol.TypeCluster, testNode)
	c.Send(&discoveryv3.DiscoveryRequest{Node: testNode}) // no type: the service's
	c.ExpectResponse(TypeURL(protocol.TypeCluster), Names("web"))
	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeListener})
	assert.ErrorContains(t, c.ExpectError(codes.InvalidArgument), "on the cds service")

	d := m.DeltaTyped(t, protocol.TypeCluster, testNode)
	d.Subscribe("", "web")
	d.ExpectResponse(DTypeURL(protocol.TypeCluster), Updated("web"))
}

func TestMemoryAuthorizeRefuses(t *testing.T) {
	st := store.New()
	m := NewMemory(st, stream.Options{Authorize: func(_ context.Context, _ *corev3.Node) error { return errors.New("not you") }})
	c := m.DeltaADS(t, testNode)
	c.Subscribe(protocol.TypeCluster, "web")
	assert.ErrorContains(t, c.ExpectError(codes.PermissionDenied), "not you")
}

func TestMemoryCloseAndCancel(t *testing.T) {
	_, m := memoryWith(t, store.Set("edge", xdstest.Cluster("web")))
	c := m.ADS(t, testNode)
	c.Request(protocol.TypeCluster).ExpectResponse(Names("web"))
	require.Len(t, m.Streams(), 1)
	assert.Equal(t, testNode.GetId(), m.Streams()[0].NodeID)
	assert.Equal(t, "sotw", m.Streams()[0].Variant)
	c.Close()
	assert.NoError(t, c.ExpectError(codes.OK))
	assert.Empty(t, m.Streams())

	d := m.DeltaADS(t, testNode)
	d.Subscribe(protocol.TypeCluster, "web")
	d.Cancel()
	d.ExpectError(codes.Canceled) // what the machine owed is lost
}

func TestMemoryShutdownEndsEveryStream(t *testing.T) {
	_, m := memoryWith(t, store.Set("edge", xdstest.Cluster("web")))
	c := m.ADS(t, testNode)
	c.Request(protocol.TypeCluster)
	d := m.DeltaADS(t, testNode)
	d.Subscribe(protocol.TypeCluster, "web").ExpectResponse(Updated("web"))
	require.Len(t, m.Streams(), 2)
	m.Shutdown()
	assert.Empty(t, m.Streams())
	c.ExpectError(codes.Unavailable) // the CDS response was never computed: lost
	d.ExpectError(codes.Unavailable)
}
