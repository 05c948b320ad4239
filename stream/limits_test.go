package stream_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Operating limits: what one client can make the server hold. Each memory test
// measures the live heap before a hostile client, and after it has left, in the
// same run, and requires the second to be within a stated margin of the first.

const mib = 1 << 20

// liveHeap is the live heap after collection. What the server holds weakly
// (shared names, frames, shared answers) leaves its tables in cleanups that run
// after the collection finds it unreachable, and is freed by the next one; so
// it collects until the heap is at most want, a bounded number of times, and
// returns the last figure.
func liveHeap(want uint64) uint64 {
	var m runtime.MemStats
	for range 20 {
		runtime.GC()
		runtime.GC() // a second time, for sync.Pool's victim cache (gRPC's buffers)
		runtime.ReadMemStats(&m)
		if m.HeapAlloc <= want {
			break
		}
		time.Sleep(10 * time.Millisecond) // let the cleanups run
	}
	return m.HeapAlloc
}

// waitGone waits, a bounded while, for the server to have no stream left.
func (e *env) waitGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.srv.Streams()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("streams still open: %d", len(e.srv.Streams()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// requireHeapReturned fails unless the live heap comes back to within margin of
// base, and logs both figures.
func requireHeapReturned(t *testing.T, base uint64, margin uint64, what string) {
	t.Helper()
	after := liveHeap(base + margin)
	t.Logf("%s: live heap %.1f MiB before, %.1f MiB after (+%.1f MiB; margin %.1f MiB)",
		what, float64(base)/mib, float64(after)/mib, (float64(after)-float64(base))/mib, float64(margin)/mib)
	require.LessOrEqual(t, after, base+margin, "%s: the server kept what the client left behind", what)
}

// name returns a resource name of n bytes, unique by i.
func name(i, n int) string {
	p := fmt.Sprintf("svc-%08d-", i)
	return p + strings.Repeat("x", n-len(p))
}

// A name over MaxNameBytes, or names over MaxRequestNameBytes in all, end their
// stream with InvalidArgument naming the limit, on SotW and delta alike. Other
// streams go on.
func TestNameLimits(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	good := conv.ADS(t, e.cc, node("good", scope))
	good.Request(cds)
	good.ExpectResponse(conv.Names("a"))
	good.ACK()

	long := conv.ADS(t, e.cc, node("long", scope))
	long.Request(eds, "a", name(0, stream.DefaultMaxNameBytes+1))
	assert.Contains(t, long.ExpectError(codes.InvalidArgument).Error(),
		fmt.Sprintf("a resource of %d bytes, more than the limit of %d bytes per name", stream.DefaultMaxNameBytes+1, stream.DefaultMaxNameBytes))

	// Each name is within the limit; together they are not.
	var names []string
	for i := 0; len(names)*4000 <= stream.DefaultMaxRequestNameBytes; i++ {
		names = append(names, name(i, 4000))
	}
	many := conv.ADS(t, e.cc, node("many", scope))
	many.Request(eds, names...)
	assert.Contains(t, many.ExpectError(codes.InvalidArgument).Error(),
		fmt.Sprintf("more than the limit of %d bytes per request", stream.DefaultMaxRequestNameBytes))

	delta := conv.DeltaADS(t, e.cc, node("delta", scope))
	delta.Subscribe(eds, name(0, stream.DefaultMaxNameBytes+1))
	assert.Contains(t, delta.ExpectError(codes.InvalidArgument).Error(), "bytes per name")

	// The limits are options.
	small := newEnv(t, func(o *stream.Options) { o.Limits.MaxNameBytes, o.Limits.MaxRequestNameBytes = 10, 25 })
	ok := conv.ADS(t, small.cc, node("ok", scope))
	ok.Request(cds, "0123456789", "0123456789")
	ok.ExpectResponse(conv.Names())
	over := conv.ADS(t, small.cc, node("over", scope))
	over.Request(cds, "0123456789", "0123456789", "0123456789")
	assert.Contains(t, over.ExpectError(codes.InvalidArgument).Error(), "limit of 25 bytes per request")

	e.commit(t, clusters("b")...)
	good.ExpectResponse(conv.Names("a", "b"))
}

// A client that sends names and leaves takes them with it: names refused by a
// limit are never kept, and names a subscription used leave the server's table
// of shared names when nothing uses them any more.
func TestNamesLeaveWithTheirClient(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	warm := conv.ADS(t, e.cc, node("warm", scope))
	warm.Request(eds, "a")
	warm.ExpectResponse()
	warm.Cancel()
	e.waitGone(t)
	base := liveHeap(0)

	// 40 streams each naming one unique name of 1 MiB (over the limit).
	for i := range 40 {
		askOnce(t, e, &discoveryv3.DiscoveryRequest{Node: node(fmt.Sprint("hostile-", i), scope), TypeUrl: cds, ResourceNames: []string{name(i, mib)}})
	}
	// One stream subscribing ten times over to 500 unique names of 4,000 bytes
	// (2 MB a request, within the limits), then leaving.
	subscribeAndLeave(t, e, 10, 500, 4000)
	e.waitGone(t)
	requireHeapReturned(t, base, 4*mib, "60 MB of names from clients that left")
}

// askOnce opens an ADS stream, sends req, and waits for the server's answer: a
// response, or the end of the stream, whose error it returns.
func askOnce(t *testing.T, e *env, req *discoveryv3.DiscoveryRequest) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := e.cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
	require.NoError(t, err)
	require.NoError(t, s.SendMsg(req))
	return s.RecvMsg(new(discoveryv3.DiscoveryResponse))
}

func subscribeAndLeave(t *testing.T, e *env, requests, count, size int) {
	t.Helper()
	c := conv.ADS(t, e.cc, node("subscriber", scope))
	for r := range requests {
		names := make([]string, count)
		for i := range names {
			names[i] = name(r*count+i, size)
		}
		c.Request(eds, names...)
		first := names[0]
		e.status(t, "subscriber", func(s stream.StreamStatus) bool {
			n := typeStatus(s, eds).Names
			return len(n) == count && n[0] == first
		})
	}
	c.Cancel()
}

// Cycles of one endpoint change and one fresh client leave nothing behind: the
// frames and shared answers made for a table go with it once no stream holds
// it and the store has moved on.
func TestFramesLeaveWithTheirTables(t *testing.T) {
	e := newEnv(t)
	addrs := func(cycle int) []string {
		a := make([]string, 2000)
		for j := range a {
			a[j] = fmt.Sprintf("10.%d.%d.%d:8080", j/250, j%250, cycle%250)
		}
		return a
	}
	names := []string{"svc-0", "svc-1"}
	e.commit(t, store.Set(scope, xdstest.Endpoints("svc-0", addrs(0)...)), store.Set(scope, xdstest.Endpoints("svc-1", addrs(0)...)))
	fresh := func(id string) {
		c := conv.ADS(t, e.cc, node(id, scope))
		c.Request(protocol.TypeEndpoint, names...)
		c.ExpectResponse(conv.Names(names...))
		c.Cancel()
	}
	fresh("warm")
	e.waitGone(t)
	base := liveHeap(0)

	const cycles = 40 // a frame of about 100 KB each
	for cycle := 1; cycle <= cycles; cycle++ {
		e.commit(t, store.Set(scope, xdstest.Endpoints("svc-0", addrs(cycle)...)))
		fresh(fmt.Sprint("client-", cycle))
	}
	e.waitGone(t)
	requireHeapReturned(t, base, 2*mib, fmt.Sprintf("%d cycles of an endpoint change and a fresh client", cycles))
}

// envoyNode is a node as Envoy sends it: identity, metadata, locality, user
// agent, and the list of extensions it was built with, here of about extBytes.
func envoyNode(t testing.TB, id string, extBytes int) *corev3.Node {
	n := &corev3.Node{
		Id:                   id,
		Cluster:              scope,
		Metadata:             mustStruct(t, map[string]any{"team": "edge", "ISTIO_VERSION": "1.24"}),
		Locality:             &corev3.Locality{Region: "eu-west-1", Zone: "eu-west-1a"},
		UserAgentName:        "envoy",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.33.0"},
		ClientFeatures:       []string{"envoy.lb.does_not_support_overprovisioning"},
		ListeningAddresses:   []*corev3.Address{{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/envoy"}}}},
	}
	for i, size := 0, proto.Size(n); size < extBytes; i++ {
		ext := &corev3.Extension{
			Name:     fmt.Sprintf("envoy.filters.http.extension_%04d", i),
			Category: "envoy.filters.http",
			TypeUrls: []string{fmt.Sprintf("type.googleapis.com/envoy.extensions.filters.http.extension_%04d.v3.Config", i)},
		}
		n.Extensions = append(n.Extensions, ext)
		size += proto.Size(ext) + 3 // its tag and length
	}
	return n
}

// A node over MaxNodeBytes ends its stream with InvalidArgument naming the
// limit, before it is authorized or given a scope (R2: the node comes with the
// first request); so does a Fetch carrying one.
func TestNodeLimit(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	big := envoyNode(t, "big", stream.DefaultMaxNodeBytes+1)
	c := conv.ADS(t, e.cc, big)
	c.Request(cds)
	err := c.ExpectError(codes.InvalidArgument)
	assert.Contains(t, err.Error(), fmt.Sprintf("more than the limit of %d bytes per node", stream.DefaultMaxNodeBytes))
	d := conv.DeltaADS(t, e.cc, big)
	d.Subscribe(cds, "*")
	assert.Contains(t, d.ExpectError(codes.InvalidArgument).Error(), "bytes per node")
	err = e.cc.Invoke(t.Context(), "/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters",
		&discoveryv3.DiscoveryRequest{Node: big}, new(discoveryv3.DiscoveryResponse))
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	assert.Contains(t, err.Error(), "bytes per node")

	// The limit is an option; a node within it is served.
	small := newEnv(t, func(o *stream.Options) { o.Limits.MaxNodeBytes = 100 })
	small.commit(t, clusters("a")...)
	ok := conv.ADS(t, small.cc, node("ok", scope))
	ok.Request(cds)
	ok.ExpectResponse(conv.Names("a"))
	over := conv.ADS(t, small.cc, envoyNode(t, "over", 0))
	over.Request(cds)
	assert.Contains(t, over.ExpectError(codes.InvalidArgument).Error(), "limit of 100 bytes per node")
}

// A stream keeps what it uses of its node: what identifies it, its metadata,
// locality and user agent, which status and CSDS show. Not the extensions,
// client features or addresses, which are often most of an Envoy's node.
func TestStreamKeepsWhatItUsesOfItsNode(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	full := envoyNode(t, "envoy-1", 64<<10)
	c := conv.ADS(t, e.cc, full)
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	kept := e.status(t, "envoy-1", nil).Node
	want := &corev3.Node{
		Id: full.Id, Cluster: full.Cluster, Metadata: full.Metadata, Locality: full.Locality,
		UserAgentName: full.UserAgentName, UserAgentVersionType: full.UserAgentVersionType,
	}
	assert.True(t, proto.Equal(want, kept), "kept %v", kept)
}

// A stream's memory does not grow with what its node carries beyond what it
// keeps, and nodes over the limit are never kept at all.
func TestNodesLeaveWithTheirClient(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	base := liveHeap(0)

	// One node object on the client side: what the heap gains is the server's.
	heavy := envoyNode(t, "heavy", 200<<10)
	var streams []*conv.SotW
	for range 30 {
		c := conv.ADS(t, e.cc, heavy)
		c.Request(cds)
		c.ExpectResponse(conv.Names("a"))
		streams = append(streams, c)
	}
	huge := node("huge", scope)
	huge.Metadata = mustStruct(t, map[string]any{"blob": strings.Repeat("x", 3500<<10)})
	for range 10 {
		askOnce(t, e, &discoveryv3.DiscoveryRequest{Node: huge, TypeUrl: cds})
	}
	connected := liveHeap(base + 3*mib)
	t.Logf("30 streams of 200 KiB nodes connected: live heap %.1f MiB, baseline %.1f MiB", float64(connected)/mib, float64(base)/mib)
	require.LessOrEqual(t, connected, base+3*mib, "streams keep the parts of their node they do not use")

	for _, c := range streams {
		c.Cancel()
	}
	streams = nil
	e.waitGone(t)
	requireHeapReturned(t, base, 2*mib, "30 nodes of 200 KiB and 10 refused of 3.5 MB")
}
