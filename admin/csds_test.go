package admin

import (
	"context"
	"fmt"
	"math"
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
	"google.golang.org/protobuf/proto"
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
	ts := startTestServer(t)
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
	ts := startTestServer(t)
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
	ts.a.Shutdown()
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
	ts := startTestServer(t)
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
	ts := startTestServer(t)
	d := conv.DeltaADS(t, ts.cc, node("envoy-d", "edge"))
	d.Subscribe(protocol.TypeCluster, "*").ExpectResponse(conv.Updated("api", "payments", "web"))
	d.ACK()
	eventually(t, "the delta ACK in CSDS", func() bool {
		st := statuses(fetchStatus(t, ts.cc), "envoy-d")
		return st["CDS web"].GetClientStatus() == adminv3.ClientResourceStatus_ACKED
	})
	assert.Equal(t, 1.0, testutil.ToFloat64(ts.metrics.streams.WithLabelValues("delta")))
	assert.Equal(t, 1.0, testutil.ToFloat64(ts.metrics.acks.WithLabelValues("delta", "CDS")))
	var clients []Client
	clients = getClients(t, ts.admin.URL, "/debug/clients")
	require.Len(t, clients, 1)
	assert.Equal(t, "delta", clients[0].Variant)
	assert.True(t, clients[0].Types[0].Wildcard)
}

// csdsTrio serves the edge example with a CSDS budget of maxBytes to three
// nodes, envoy-a, envoy-b and envoy-c, connected in that order, each holding
// the three clusters, ACKed: three node configs of the same size.
func csdsTrio(t *testing.T, maxBytes int) *testServer {
	t.Helper()
	ts := startTestServer(t, func(o *Options) { o.CSDSMaxBytes = maxBytes })
	for _, id := range []string{"envoy-a", "envoy-b", "envoy-c"} {
		c := conv.ADS(t, ts.cc, node(id, "edge"))
		c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))
		c.ACK()
	}
	eventually(t, "the three ACKs", func() bool {
		acked := 0
		for _, s := range ts.xds.Streams() {
			if len(s.Types) == 1 && s.Types[0].VersionACKed != "" {
				acked++
			}
		}
		return acked == 3
	})
	return ts
}

func nodeIDs(resp *statusv3.ClientStatusResponse) []string {
	var ids []string
	for _, c := range resp.GetConfig() {
		ids = append(ids, c.GetNode().GetId())
	}
	return ids
}

// A FetchClientStatus answer is counted to the byte: one that fills the budget
// exactly is sent, one a byte over it is refused with ResourceExhausted, saying
// how many nodes matched and how many fit, and what to do.
func TestCSDSFetchBudget(t *testing.T) {
	full := fetchStatus(t, csdsTrio(t, DefaultCSDSMaxBytes).cc)
	require.Equal(t, []string{"envoy-a", "envoy-b", "envoy-c"}, nodeIDs(full))
	size := proto.Size(full)

	assert.Equal(t, size, proto.Size(fetchStatus(t, csdsTrio(t, size).cc)), "the whole answer, at a budget of its size")

	_, err := statusv3.NewClientStatusDiscoveryServiceClient(csdsTrio(t, size-1).cc).
		FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	for _, want := range []string{fmt.Sprintf("budget of %d bytes (--csds-max-bytes)", size-1), "3 nodes match, 2 fit",
		"node_matchers", "exclude_resource_contents", "StreamClientStatus"} {
		assert.Contains(t, status.Convert(err).Message(), want)
	}
}

// StreamClientStatus sends an answer over the budget in several messages, each
// within it and holding whole nodes; an answer matching no node is one empty
// message; a node whose config alone exceeds the budget ends the stream with
// ResourceExhausted.
func TestCSDSStreamPages(t *testing.T) {
	full := fetchStatus(t, csdsTrio(t, DefaultCSDSMaxBytes).cc)
	node := proto.Size(&statusv3.ClientStatusResponse{Config: full.GetConfig()[:1]})
	require.Equal(t, 3*node, proto.Size(full), "three configs of the same size")

	ts := csdsTrio(t, 3*node-1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc).StreamClientStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&statusv3.ClientStatusRequest{}))
	var got [][]string
	for range 2 {
		resp, err := stream.Recv()
		require.NoError(t, err)
		assert.LessOrEqual(t, proto.Size(resp), 3*node-1)
		got = append(got, nodeIDs(resp))
	}
	assert.Equal(t, [][]string{{"envoy-a", "envoy-b"}, {"envoy-c"}}, got)

	require.NoError(t, stream.Send(&statusv3.ClientStatusRequest{NodeMatchers: []*matcherv3.NodeMatcher{{NodeId: exact("nobody")}}}))
	resp, err := stream.Recv()
	require.NoError(t, err)
	assert.Empty(t, resp.GetConfig())

	ts = csdsTrio(t, node-1)
	stream, err = statusv3.NewClientStatusDiscoveryServiceClient(ts.cc).StreamClientStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&statusv3.ClientStatusRequest{}))
	_, err = stream.Recv()
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), `node "envoy-a" alone exceeds the CSDS budget`)
	assert.Contains(t, status.Convert(err).Message(), "exclude_resource_contents")
}

// A FetchClientStatus whose answer is far over the budget costs the server
// about what an answer within it costs: it stops building at the node that
// crosses the budget, rather than building hundreds of megabytes and failing
// to send them. The baseline is a fetch of one node in the same run.
func TestCSDSFetchOverBudgetAllocatesLittle(t *testing.T) {
	const budget = 64 << 10
	ts := startTestServer(t, func(o *Options) { o.CSDSMaxBytes = budget })
	commitWorkload(t, ts.st, fleetWorkload)
	startFleet(t, ts.cc, 100, fleetWorkload)
	client := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc)
	// The client lifts its own receive limit: only the server's budget applies.
	fetch := func(req *statusv3.ClientStatusRequest) (*statusv3.ClientStatusResponse, uint64, error) {
		before := allocated()
		resp, err := client.FetchClientStatus(context.Background(), req, grpc.MaxCallRecvMsgSize(1<<30))
		return resp, allocated() - before, err
	}

	// The baseline is the least of three fetches: the first ones also fill
	// gRPC's buffer pools.
	oneNode := &statusv3.ClientStatusRequest{NodeMatchers: []*matcherv3.NodeMatcher{{NodeId: exact("envoy-0042")}}}
	baseline := uint64(math.MaxUint64)
	for range 3 {
		one, n, err := fetch(oneNode)
		require.NoError(t, err)
		require.Len(t, one.GetConfig(), 1)
		require.Len(t, one.GetConfig()[0].GetGenericXdsConfigs(), 210)
		baseline = min(baseline, n)
	}

	_, all, err := fetch(&statusv3.ClientStatusRequest{})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "100 nodes match, 1 fit")
	t.Logf("allocated: %d bytes for one node, %d for all (%.2fx)", baseline, all, float64(all)/float64(baseline))
	assert.Less(t, all, baseline+16*budget)
}
