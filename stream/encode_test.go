package stream

import (
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// X4: a delta response naming a resource as its client spelled it gets a frame of
// its own; responses that name everything alike share one, and a hit costs no
// allocation.
func TestX4FramesKeepEachClientsSpelling(t *testing.T) {
	const (
		normal  = "xdstp://auth/envoy.config.cluster.v3.Cluster/c1?a=1&b=2"
		swapped = "xdstp://auth/envoy.config.cluster.v3.Cluster/c1?b=2&a=1"
	)
	st := store.New()
	_, err := st.Commit(store.Set("s", xdstest.Cluster(swapped)), store.Set("s", xdstest.Cluster("plain")))
	require.NoError(t, err)
	table := st.View().Table("s", protocol.TypeCluster)
	entries := []*store.Entry{table.Get(normal), table.Get("plain")}
	require.NotNil(t, entries[0])
	plainResp := func() *Response {
		return &Response{TypeURL: protocol.TypeCluster, Version: "v", Resources: entries, Removed: []string{"gone"}}
	}
	spelledResp := func() *Response {
		r := plainResp()
		r.names = []string{swapped, "plain"}
		return r
	}
	names := func(frame []byte) []string {
		var m discoveryv3.DeltaDiscoveryResponse
		require.NoError(t, proto.Unmarshal(frame, &m))
		var out []string
		for _, r := range m.GetResources() {
			out = append(out, r.GetName())
		}
		return append(out, m.GetRemovedResources()...)
	}

	for _, spelledFirst := range []bool{false, true} {
		c := newFrameCache()
		var a, b []byte
		if spelledFirst {
			b, a = c.delta(spelledResp()), c.delta(plainResp())
		} else {
			a, b = c.delta(plainResp()), c.delta(spelledResp())
		}
		assert.Equal(t, []string{normal, "plain", "gone"}, names(a))
		assert.Equal(t, []string{swapped, "plain", "gone"}, names(b))
		assert.Same(t, &a[0], &c.delta(plainResp())[0], "the same response shares its frame")
		assert.Same(t, &b[0], &c.delta(spelledResp())[0], "so does the same spelling")

		r := plainResp()
		assert.Zero(t, testing.AllocsPerRun(100, func() { _ = c.delta(r) }))
	}
}
