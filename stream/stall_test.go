package stream_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// bigClusters returns n clusters whose names are long enough that one CDS
// response is larger than a stream's flow-control window.
func bigClusters(n int, gen int) []store.Change {
	var out []store.Change
	for i := range n {
		name := fmt.Sprintf("cluster-%03d-%s", i, strings.Repeat("x", 1000))
		out = append(out, store.Set(scope, xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(gen+1)*time.Second))))
	}
	return out
}

// A client that stops reading blocks only its own stream: 100 healthy clients get
// every update meanwhile, and when the stalled one reads again it gets the latest
// state, not the backlog of intermediate versions.
func TestStalledClientBlocksOnlyItself(t *testing.T) {
	e := newEnv(t)
	e.commit(t, bigClusters(100, 0)...)

	// The stalled client: small fixed windows, and it does not read.
	stalledCC, err := grpc.NewClient(e.cc.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	require.NoError(t, err)
	t.Cleanup(func() { _ = stalledCC.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stalled, err := stalledCC.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
	require.NoError(t, err)
	require.NoError(t, stalled.SendMsg(&discoveryv3.DiscoveryRequest{Node: node("stalled", scope), TypeUrl: cds}))
	e.status(t, "stalled", func(s stream.StreamStatus) bool { return typeStatus(s, cds).VersionSent != "" })
	var stuckAt string

	healthy := make([]*conv.SotW, 100)
	versions := make([]string, 100)
	for i := range healthy {
		healthy[i] = conv.ADS(t, e.cc, node(fmt.Sprintf("healthy-%d", i), scope))
		healthy[i].Request(cds)
		versions[i] = healthy[i].ExpectResponse().Version()
		healthy[i].ACK()
	}
	const updates = 10
	for gen := 1; gen <= updates; gen++ {
		e.commit(t, bigClusters(100, gen)...)
		var wg sync.WaitGroup
		for i, c := range healthy {
			wg.Go(func() {
				r := c.ExpectResponse(conv.VersionNot(versions[i]))
				versions[i] = r.Version()
				c.ACK()
			})
		}
		wg.Wait()
		if gen == 2 {
			// By now the stalled stream is blocked in a send it cannot finish.
			stuckAt = typeStatus(e.status(t, "stalled", nil), cds).VersionSent
		}
	}
	latest := versions[0]
	for _, v := range versions {
		assert.Equal(t, latest, v, "every healthy client holds the latest version")
	}
	s := e.status(t, "stalled", nil)
	assert.Equal(t, stuckAt, typeStatus(s, cds).VersionSent, "the stalled stream is still stuck on its first response")

	assert.NotEqual(t, latest, stuckAt)

	// It reads again: the few responses gRPC's flow control had let into the
	// transport's buffers before the stream blocked, then the latest state at
	// once; none of the versions in between. That bound (4) does not grow with the
	// number of updates (10): the memory a stalled stream holds is bounded.
	var got []string
	for len(got) == 0 || got[len(got)-1] != latest {
		resp := new(discoveryv3.DiscoveryResponse)
		require.NoError(t, stalled.RecvMsg(resp))
		got = append(got, resp.GetVersionInfo())
		require.LessOrEqual(t, len(got), 4, "a backlog of intermediate versions: %v", got)
	}
	assert.Contains(t, got, stuckAt)
}
