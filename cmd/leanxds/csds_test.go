package main

import (
	"context"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
)

func fetchStatus(t *testing.T, cc grpc.ClientConnInterface, ms ...*matcherv3.NodeMatcher) *statusv3.ClientStatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := statusv3.NewClientStatusDiscoveryServiceClient(cc).FetchClientStatus(ctx, &statusv3.ClientStatusRequest{NodeMatchers: ms})
	require.NoError(t, err)
	return resp
}

// statusKey is "CDS web" for a GenericXdsConfig.
func statusKey(g *statusv3.ClientConfig_GenericXdsConfig) string {
	return protocol.Short(g.GetTypeUrl()) + " " + g.GetName()
}

func statuses(resp *statusv3.ClientStatusResponse, nodeID string) map[string]*statusv3.ClientConfig_GenericXdsConfig {
	out := map[string]*statusv3.ClientConfig_GenericXdsConfig{}
	for _, c := range resp.GetConfig() {
		if c.GetNode().GetId() != nodeID {
			continue
		}
		for _, g := range c.GetGenericXdsConfigs() {
			out[statusKey(g)] = g
		}
	}
	return out
}

// CSDS reports every subscribed resource with its status as the server sees it:
// ACKED, NACKED with the client's error, REQUESTED (sent, not answered yet),
// DOES_NOT_EXIST.
func TestCSDSStatuses(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	cds := c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))
	c.ACK()
	c.Request(protocol.TypeEndpoint, "web", "nope").ExpectResponse(conv.Names("web"))
	c.NACK("endpoint web: bad port")
	c.Request(protocol.TypeListener).ExpectResponse(conv.Names("internal", "public")) // not answered

	var st map[string]*statusv3.ClientConfig_GenericXdsConfig
	eventually(t, "the NACK to be recorded", func() bool {
		st = statuses(fetchStatus(t, ts.cc), "envoy-1")
		return st["EDS web"].GetClientStatus() == adminv3.ClientResourceStatus_NACKED
	})
	assert.Equal(t, adminv3.ClientResourceStatus_ACKED, st["CDS web"].GetClientStatus())
	assert.Equal(t, statusv3.ConfigStatus_SYNCED, st["CDS web"].GetConfigStatus())
	assert.Equal(t, cds.Version(), st["CDS web"].GetVersionInfo())
	assert.Equal(t, protocol.TypeCluster, st["CDS web"].GetXdsConfig().GetTypeUrl())

	web := st["EDS web"]
	assert.Equal(t, statusv3.ConfigStatus_ERROR, web.GetConfigStatus())
	assert.Equal(t, "endpoint web: bad port", web.GetErrorState().GetDetails())
	assert.NotEmpty(t, web.GetErrorState().GetVersionInfo())
	assert.Empty(t, web.GetVersionInfo(), "nothing of EDS was ever accepted")

	assert.Equal(t, adminv3.ClientResourceStatus_DOES_NOT_EXIST, st["EDS nope"].GetClientStatus())
	assert.Nil(t, st["EDS nope"].GetXdsConfig())

	assert.Equal(t, adminv3.ClientResourceStatus_REQUESTED, st["LDS public"].GetClientStatus())
	assert.Equal(t, statusv3.ConfigStatus_STALE, st["LDS public"].GetConfigStatus())
	assert.Len(t, st, 3+2+2)
}

// Node matchers select the nodes reported; StreamClientStatus answers each
// request; an unsupported matcher is InvalidArgument.
func TestCSDSNodeMatchers(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	for _, zone := range []string{"a", "b"} {
		md, err := structpb.NewStruct(map[string]any{"zone": zone})
		require.NoError(t, err)
		c := conv.ADS(t, ts.cc, &corev3.Node{Id: "envoy-" + zone, Cluster: "edge", Metadata: md})
		c.Request(protocol.TypeCluster).ExpectResponse()
	}
	nodes := func(resp *statusv3.ClientStatusResponse) []string {
		var ids []string
		for _, c := range resp.GetConfig() {
			ids = append(ids, c.GetNode().GetId())
		}
		return ids
	}
	eventually(t, "both streams", func() bool { return len(ts.xds.Streams()) == 2 })
	assert.ElementsMatch(t, []string{"envoy-a", "envoy-b"}, nodes(fetchStatus(t, ts.cc)))
	assert.Equal(t, []string{"envoy-b"}, nodes(fetchStatus(t, ts.cc, &matcherv3.NodeMatcher{
		NodeMetadatas: []*matcherv3.StructMatcher{metaMatch(stringValue(exact("b")), "zone")},
	})))
	assert.Equal(t, []string{"envoy-a"}, nodes(fetchStatus(t, ts.cc, &matcherv3.NodeMatcher{NodeId: exact("envoy-a")})))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc).StreamClientStatus(ctx)
	require.NoError(t, err)
	for _, id := range []string{"envoy-a", "envoy-b"} {
		require.NoError(t, stream.Send(&statusv3.ClientStatusRequest{NodeMatchers: []*matcherv3.NodeMatcher{{NodeId: exact(id)}}}))
		resp, err := stream.Recv()
		require.NoError(t, err)
		assert.Equal(t, []string{id}, nodes(resp))
	}
	// Shutdown ends the stream rather than waiting for the client.
	close(ts.done)
	_, err = stream.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))

	_, err = statusv3.NewClientStatusDiscoveryServiceClient(ts.cc).FetchClientStatus(ctx, &statusv3.ClientStatusRequest{
		NodeMatchers: []*matcherv3.NodeMatcher{{NodeId: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}},
	})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}

// exclude_resource_contents leaves the resources out, keeping their status.
func TestCSDSExcludeContents(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	c.Request(protocol.TypeCluster).ExpectResponse()
	eventually(t, "the stream", func() bool { return len(ts.xds.Streams()) == 1 })
	resp, err := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc).FetchClientStatus(context.Background(),
		&statusv3.ClientStatusRequest{ExcludeResourceContents: true})
	require.NoError(t, err)
	require.Len(t, resp.GetConfig(), 1)
	require.Len(t, resp.GetConfig()[0].GetGenericXdsConfigs(), 3)
	for _, g := range resp.GetConfig()[0].GetGenericXdsConfigs() {
		assert.Nil(t, g.GetXdsConfig())
	}
}

// Delta streams are reported like SotW ones: same hooks, same status, their
// variant in the metrics and /debug/clients.
func TestDeltaStreamObserved(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	d := conv.DeltaADS(t, ts.cc, node("envoy-d", "edge"))
	d.Subscribe(protocol.TypeCluster, "*").ExpectResponse(conv.Updated("api", "payments", "web"))
	d.ACK()
	eventually(t, "the delta ACK in CSDS", func() bool {
		st := statuses(fetchStatus(t, ts.cc), "envoy-d")
		return st["CDS web"].GetClientStatus() == adminv3.ClientResourceStatus_ACKED
	})
	assert.Equal(t, 1.0, testutil.ToFloat64(ts.metrics.streams.WithLabelValues("delta")))
	assert.Equal(t, 1.0, testutil.ToFloat64(ts.metrics.acks.WithLabelValues("delta", "CDS")))
	var clients []clientJSON
	getJSON(t, ts.admin.URL, "/debug/clients", &clients)
	require.Len(t, clients, 1)
	assert.Equal(t, "delta", clients[0].Variant)
	assert.True(t, clients[0].Types[0].Wildcard)
}
