package admin

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Guard says how the node listings are guarded, for a startup log.
func TestGuard(t *testing.T) {
	assert.Equal(t, "callers on this host only", startTestServer(t).a.Guard())
	assert.Equal(t, "admin token", startTestServer(t, func(o *Options) { o.Token = testToken }).a.Guard())
}

// Without Options.Metrics, New makes a set of its own and serves it: the
// store and the limits are read, the streams' counters stay at zero.
func TestNewMakesItsMetrics(t *testing.T) {
	ts := startTestServer(t, func(o *Options) { o.Metrics = nil })
	require.NotNil(t, ts.a.Metrics())
	assert.NotSame(t, ts.metrics, ts.a.Metrics())
	assert.Equal(t, 3.0, metric(t, ts.admin.URL, `leanxds_resources{scope="default",type="CDS"}`))
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, "leanxds_xds_connections"))
	given := startTestServer(t)
	assert.Same(t, given.metrics, given.a.Metrics())
	assert.Same(t, ts.a.Metrics().reg, ts.a.Metrics().Registry())
}

// P2: an EDS name a client asks for that the store has no endpoints for is
// served as an explicit empty assignment, and CSDS and /debug/config show it
// so; a name that does not exist at all is DOES_NOT_EXIST.
func TestServedEmptyAssignment(t *testing.T) {
	st := store.New()
	got := servedResources(st.View(), "edge", stream.TypeStatus{
		TypeURL: protocol.TypeEndpoint, Served: true, Names: []string{"web", "gone"}, Missing: []string{"gone"},
		VersionSent: "v", VersionACKed: "v",
	})
	require.Len(t, got, 2)
	assert.Equal(t, "gone", got[0].name)
	assert.Nil(t, got[0].entry)
	assert.Equal(t, adminv3.ClientResourceStatus_DOES_NOT_EXIST, got[0].client)
	assert.Equal(t, "web", got[1].name)
	require.NotNil(t, got[1].entry)
	assert.Equal(t, adminv3.ClientResourceStatus_ACKED, got[1].client)
	var cla endpointv3.ClusterLoadAssignment
	require.NoError(t, proto.Unmarshal(got[1].entry.Body, &cla))
	assert.Equal(t, "web", cla.GetClusterName())
	assert.Empty(t, cla.GetEndpoints())
}
