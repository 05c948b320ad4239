package stream_test

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// sessScope and sessNode are the scope and node of the session tests.
const sessScope = "sessions"

var sessNode = &corev3.Node{Id: "envoy-1", Cluster: sessScope}

// A Session is the stream without its transport: the same rules hold as over
// the wire, in memory and at once.
func TestSessionInMemory(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set(sessScope, xdstest.Cluster("a")), store.Set(sessScope, xdstest.Cluster("b")))
	require.NoError(t, err)
	srv := stream.New(st, stream.Options{})

	// R2: the first request must name the node.
	x := srv.SotWSession(context.Background(), "")
	_, err = x.Step(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "R2: %v", err)
	assert.False(t, x.Opened())

	// A per-type service fixes the type of every request.
	x = srv.SotWSession(context.Background(), protocol.TypeCluster)
	_, err = x.Step(&discoveryv3.DiscoveryRequest{Node: sessNode, TypeUrl: protocol.TypeEndpoint})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "another type on the CDS service: %v", err)

	x = srv.SotWSession(context.Background(), protocol.TypeCluster)
	rs, err := x.Step(&discoveryv3.DiscoveryRequest{Node: sessNode})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, sessScope, x.Info().Scope)
	assert.Equal(t, "cds", x.Info().Service)
	m, err := stream.SotWResponse(rs[0])
	require.NoError(t, err)
	assert.Equal(t, protocol.TypeCluster, m.GetTypeUrl())
	assert.Equal(t, rs[0].Nonce, m.GetNonce())
	assert.Len(t, m.GetResources(), 2)

	// The status is a snapshot: the one taken before an ACK does not change.
	before := x.Status()
	require.Len(t, before.Types(), 1)
	assert.Empty(t, before.Types()[0].VersionACKed)
	rs, err = x.Step(&discoveryv3.DiscoveryRequest{VersionInfo: m.GetVersionInfo(), ResponseNonce: m.GetNonce()})
	require.NoError(t, err)
	assert.Empty(t, rs, "R6: nothing new")
	assert.Equal(t, m.GetVersionInfo(), x.Status().Types()[0].VersionACKed)
	assert.Empty(t, before.Types()[0].VersionACKed, "an earlier snapshot is immutable")

	// S5: every waiting request is applied before the store change is answered.
	_, err = st.Commit(store.Set(sessScope, xdstest.Cluster("c")))
	require.NoError(t, err)
	d := srv.DeltaSession(context.Background(), "")
	rs, err = d.Step(
		&discoveryv3.DeltaDiscoveryRequest{Node: sessNode, TypeUrl: protocol.TypeCluster, ResourceNamesSubscribe: []string{"a", "c"}},
		&discoveryv3.DeltaDiscoveryRequest{TypeUrl: protocol.TypeCluster, ResourceNamesUnsubscribe: []string{"c"}},
	)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	dm, err := stream.DeltaResponse(rs[0])
	require.NoError(t, err)
	require.Len(t, dm.GetResources(), 1)
	assert.Equal(t, "a", dm.GetResources()[0].GetName(), "S5: c was withdrawn before the answer")

	// A malformed request ends the stream with InvalidArgument.
	_, err = d.Step(&discoveryv3.DeltaDiscoveryRequest{})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}

// Authorize refuses a node with PermissionDenied, before anything is served.
func TestSessionAuthorize(t *testing.T) {
	srv := stream.New(store.New(), stream.Options{Authorize: func(_ context.Context, n *corev3.Node) error {
		if n.GetId() != "envoy-1" {
			return assert.AnError
		}
		return nil
	}})
	x := srv.SotWSession(context.Background(), "")
	_, err := x.Step(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "intruder"}, TypeUrl: protocol.TypeCluster})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	x = srv.SotWSession(context.Background(), "")
	rs, err := x.Step(&discoveryv3.DiscoveryRequest{Node: sessNode, TypeUrl: protocol.TypeCluster})
	require.NoError(t, err)
	assert.Len(t, rs, 1, "S1: the first CDS request is answered, even empty")
}
