package stream

import (
	"fmt"
	"runtime"
	"testing"
	"time"

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
		r.Spellings = []string{swapped, "plain"}
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
		c := newFrameCache(DefaultFrameCacheBytes)
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

// tableResponse commits n endpoints of one service to a scope of its own and
// returns the whole-table SotW response of the new table.
func tableResponse(t *testing.T, st *store.Store, n int) *Response {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.%d.%d:80", i/250, i%250)
	}
	scope := fmt.Sprint("scope-", n)
	_, err := st.Commit(store.Set(scope, xdstest.Endpoints("svc", addrs...)))
	require.NoError(t, err)
	table := st.View().Table(scope, protocol.TypeEndpoint)
	return &Response{TypeURL: protocol.TypeEndpoint, Version: fmt.Sprint(n), Resources: table.Sorted(), Whole: true, Table: table}
}

// The frame cache is bounded by bytes: past the bound, the least recently used
// frames go; a frame larger than the bound is not kept, nor is any with a
// negative bound.
func TestFrameCacheBoundedInBytes(t *testing.T) {
	st := store.New()
	var resps []*Response
	for i := range 5 {
		resps = append(resps, tableResponse(t, st, 100+i))
	}
	size := len(encodeSotW(resps[4])) + frameOverhead
	c := newFrameCache(3 * size)
	frames := make([][]byte, 5)
	for i, r := range resps[:3] {
		frames[i] = c.sotw(r)
	}
	c.sotw(resps[0]) // used again: now the most recent
	frames[3] = c.sotw(resps[3])
	n, bytes, _ := c.size()
	assert.Equal(t, 3, n)
	assert.LessOrEqual(t, bytes, 3*size)
	assert.Same(t, &frames[0][0], &c.sotw(resps[0])[0], "the most recently used frame is kept")
	assert.Same(t, &frames[3][0], &c.sotw(resps[3])[0])
	assert.NotSame(t, &frames[1][0], &c.sotw(resps[1])[0], "the least recently used frame went first")

	small := newFrameCache(size / 2)
	small.sotw(resps[4])
	none := newFrameCache(-1)
	none.sotw(resps[4])
	for _, c := range []*frameCache{small, none} {
		n, bytes, _ := c.size()
		assert.Zero(t, n+bytes)
	}
}

// A frame leaves the cache with the table it was made from, once the store has
// replaced it and nothing holds it.
func TestFramesLeaveWithTheirTable(t *testing.T) {
	st := store.New()
	c := newFrameCache(DefaultFrameCacheBytes)
	c.sotw(tableResponse(t, st, 100))
	c.delta(tableResponse(t, st, 101))
	n, _, tables := c.size()
	require.Equal(t, 2, n)
	require.Equal(t, 2, tables)
	// The store moves on: the tables of both frames are replaced, and unused.
	_, err := st.Commit(store.ReplaceScope("scope-100"), store.ReplaceScope("scope-101"))
	require.NoError(t, err)
	settle(t, "the frames of replaced tables are gone", func() bool {
		n, bytes, tables := c.size()
		return n == 0 && bytes == 0 && tables == 0
	})
}

// settle collects garbage until cond holds, for what cleanups remove.
func settle(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 50 {
		runtime.GC()
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not so after 50 collections", what)
}
