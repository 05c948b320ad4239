package stream_test

import (
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// What the Server offers around the protocol, over gRPC: the unary Fetch
// methods, the scope of a node under each Options.ScopeOf, and the hooks. The
// protocol rules themselves are proved by the conformance suite, in memory and
// over the wire.

// Fetch answers once with what the request names.
func TestFetch(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a", "b")...)
	resp := new(discoveryv3.DiscoveryResponse)
	err := e.cc.Invoke(t.Context(), "/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters",
		&discoveryv3.DiscoveryRequest{Node: edge, ResourceNames: []string{"b"}}, resp)
	require.NoError(t, err)
	require.Len(t, resp.GetResources(), 1)
	var c clusterv3.Cluster
	require.NoError(t, resp.GetResources()[0].UnmarshalTo(&c))
	assert.Equal(t, "b", c.GetName())
	assert.Equal(t, cds, resp.GetTypeUrl())
	assert.NotEmpty(t, resp.GetVersionInfo())
}

// Node → scope: by cluster by default, falling back to the default scope; by id,
// by metadata, and without fallback on demand.
func TestScopes(t *testing.T) {
	// The scope is decided before the transport matters: in memory, every
	// answer is exact and immediate.
	st := store.New()
	_, err := st.Commit(store.Set(scope, xdstest.Cluster("edge-cluster")), store.Set(stream.DefaultScope, xdstest.Cluster("default-cluster")),
		store.Set("envoy-7", xdstest.Cluster("own-cluster")), store.Set("tenant-a", xdstest.Cluster("tenant-cluster")))
	require.NoError(t, err)
	byCluster := conv.NewMemory(st, stream.Options{})
	byCluster.ADS(t, node("n1", scope)).Request(cds).ExpectResponse(conv.Names("edge-cluster"))
	byCluster.ADS(t, node("n2", "nobody")).Request(cds).ExpectResponse(conv.Names("default-cluster"))

	byID := conv.NewMemory(st, stream.Options{ScopeOf: stream.ScopeByNodeID})
	byID.ADS(t, node("envoy-7", scope)).Request(cds).ExpectResponse(conv.Names("own-cluster"))

	byMeta := conv.NewMemory(st, stream.Options{ScopeOf: stream.ScopeByMetadata("tenant")})
	n := node("n3", scope)
	n.Metadata = mustStruct(t, map[string]any{"tenant": "tenant-a"})
	byMeta.ADS(t, n).Request(cds).ExpectResponse(conv.Names("tenant-cluster"))

	strict := conv.NewMemory(st, stream.Options{NoDefaultScope: true})
	strict.ADS(t, node("n4", "nobody")).Request(cds).ExpectResponse(conv.Empty())
	streams := strict.Streams()
	require.Len(t, streams, 1)
	assert.Equal(t, "nobody", streams[0].Scope)
}

// The hooks see a stream open, its requests, responses, ACKs and NACKs, and its
// end, in order.
func TestHooks(t *testing.T) {
	events := make(chan string, 100)
	e := newEnv(t, func(o *stream.Options) {
		o.Hooks = stream.Hooks{
			StreamOpened: func(i stream.StreamInfo) { events <- "open " + i.NodeID + " " + i.Scope },
			Request:      func(i stream.StreamInfo, r stream.Received) { events <- "request " + r.Kind.String() },
			Response: func(i stream.StreamInfo, r *stream.Response, _ time.Duration) {
				events <- fmt.Sprintf("response %s %d", protocol.Short(r.TypeURL), len(r.Resources))
			},
			ACK: func(i stream.StreamInfo, typeURL, v string, _ time.Duration) {
				events <- "ack " + protocol.Short(typeURL)
			},
			NACK:         func(i stream.StreamInfo, typeURL string, n stream.NACK) { events <- "nack " + n.Message },
			StreamClosed: func(i stream.StreamInfo, err error) { events <- "closed " + i.NodeID },
		}
	})
	e.commit(t, clusters("a")...)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds)
	c.ExpectResponse()
	c.NACK("nope")
	c.Close()
	want := []string{"open envoy-1 edge", "request subscribe", "response CDS 1", "request nack", "nack nope", "closed envoy-1"}
	for _, w := range want {
		select {
		case got := <-events:
			assert.Equal(t, w, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %q", w)
		}
	}
}
