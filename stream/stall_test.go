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
	"google.golang.org/protobuf/proto"

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

// stallVariant is what the stalled-client test needs of one protocol variant.
type stallVariant struct {
	method string
	// first is the stalled client's first request.
	first proto.Message
	// version reads a response's version.
	newResp func() proto.Message
	version func(proto.Message) string
	// healthy opens a healthy client subscribed to every cluster and returns a
	// function that waits for the next response and ACKs it, returning its version.
	healthy func(t *testing.T, e *env, id string) func() string
}

var stallVariants = map[string]stallVariant{
	"sotw": {
		method:  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
		first:   &discoveryv3.DiscoveryRequest{Node: node("stalled", scope), TypeUrl: cds},
		newResp: func() proto.Message { return new(discoveryv3.DiscoveryResponse) },
		version: func(m proto.Message) string { return m.(*discoveryv3.DiscoveryResponse).GetVersionInfo() },
		healthy: func(t *testing.T, e *env, id string) func() string {
			c := conv.ADS(t, e.cc, node(id, scope), conv.WithTimeout(healthyWait))
			c.Request(cds)
			return func() string {
				v := c.ExpectResponse().Version()
				c.ACK()
				return v
			}
		},
	},
	"delta": {
		method:  "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
		first:   &discoveryv3.DeltaDiscoveryRequest{Node: node("stalled", scope), TypeUrl: cds, ResourceNamesSubscribe: []string{"*"}},
		newResp: func() proto.Message { return new(discoveryv3.DeltaDiscoveryResponse) },
		version: func(m proto.Message) string { return m.(*discoveryv3.DeltaDiscoveryResponse).GetSystemVersionInfo() },
		healthy: func(t *testing.T, e *env, id string) func() string {
			c := conv.DeltaADS(t, e.cc, node(id, scope), conv.WithTimeout(healthyWait))
			c.Subscribe(cds, "*")
			return func() string {
				v := c.ExpectResponse().GetSystemVersionInfo()
				c.ACK()
				return v
			}
		},
	},
}

// healthyWait bounds each wait of a healthy client for its next response: a
// hundred of them are pushed a hundred large clusters ten times, which under
// the race detector on a busy machine takes longer than conv's default. The
// test proves that they are all served, not how fast.
const healthyWait = 30 * time.Second

// A client that stops reading blocks only its own stream: 100 healthy clients get
// every update meanwhile, and when the stalled one reads again it gets the latest
// state, not the backlog of intermediate versions.
func TestStalledClientBlocksOnlyItself(t *testing.T) {
	for name, sv := range stallVariants {
		t.Run(name, func(t *testing.T) { testStalledClient(t, sv) })
	}
}

func testStalledClient(t *testing.T, sv stallVariant) {
	e := newEnv(t)
	e.commit(t, bigClusters(100, 0)...)

	// The stalled client: small fixed windows, and it does not read.
	stalledCC, err := grpc.NewClient(e.cc.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	require.NoError(t, err)
	t.Cleanup(func() { _ = stalledCC.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stalled, err := stalledCC.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, sv.method)
	require.NoError(t, err)
	require.NoError(t, stalled.SendMsg(sv.first))
	e.status(t, "stalled", func(s stream.StreamStatus) bool { return typeStatus(s, cds).VersionSent != "" })

	next := make([]func() string, 100)
	versions := make([]string, 100)
	for i := range next {
		next[i] = sv.healthy(t, e, fmt.Sprintf("healthy-%d", i))
		versions[i] = next[i]()
	}
	const updates = 10
	var stuckAt string
	for gen := 1; gen <= updates; gen++ {
		e.commit(t, bigClusters(100, gen)...)
		var wg sync.WaitGroup
		for i := range next {
			wg.Go(func() { versions[i] = next[i]() })
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
	assert.Equal(t, stuckAt, typeStatus(s, cds).VersionSent, "the stalled stream is still stuck")
	assert.NotEqual(t, latest, stuckAt)

	// It reads again: the few responses gRPC's flow control had let into the
	// transport's buffers before the stream blocked, then the latest state at
	// once; none of the versions in between. That bound (4) does not grow with the
	// number of updates (10): the memory a stalled stream holds is bounded.
	var got []string
	// Bounded: a stream that never brings the latest state fails the test
	// instead of hanging it.
	defer time.AfterFunc(time.Minute, cancel).Stop()
	for len(got) == 0 || got[len(got)-1] != latest {
		resp := sv.newResp()
		require.NoError(t, stalled.RecvMsg(resp))
		got = append(got, sv.version(resp))
		require.LessOrEqual(t, len(got), 4, "a backlog of intermediate versions: %v", got)
	}
	assert.Contains(t, got, stuckAt)
}
