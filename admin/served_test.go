package admin

import (
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// R15, R18: a cluster deleted from the config that make before break still
// sends is listed with what it holds, so CSDS and the dump show exactly what the
// client has; an explicitly named one is not reported as missing.
func TestServedListsRetained(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set("edge", xdstest.Cluster("x")), store.Set("edge", xdstest.Cluster("y")))
	require.NoError(t, err)
	x := st.View().Table("edge", protocol.TypeCluster).Get("x")
	_, err = st.Commit(store.Delete("edge", protocol.TypeCluster, "x"))
	require.NoError(t, err)

	for _, ts := range []stream.TypeStatus{
		{TypeURL: protocol.TypeCluster, Served: true, Wildcard: true, Retained: []*store.Entry{x}, VersionSent: "v", VersionACKed: "v"},
		{TypeURL: protocol.TypeCluster, Served: true, Names: []string{"x", "y"}, Retained: []*store.Entry{x}, VersionSent: "v", VersionACKed: "v"},
	} {
		got := servedResources(st.View(), "edge", ts)
		require.Len(t, got, 2)
		assert.Equal(t, "x", got[0].name)
		assert.Same(t, x, got[0].entry)
		assert.Equal(t, adminv3.ClientResourceStatus_ACKED, got[0].client)
		assert.Equal(t, "y", got[1].name)
	}
}
