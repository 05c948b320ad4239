package conv

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
)

// The fake server: a scripted xDS server on 127.0.0.1 that records every request
// and answers each with what its script returns.

// sotwScript answers the n-th request (from 0) of a SotW stream; an error ends the
// stream with that status.
type sotwScript func(n int, req *discoveryv3.DiscoveryRequest) ([]*discoveryv3.DiscoveryResponse, error)

// deltaScript answers the n-th request (from 0) of a delta stream.
type deltaScript func(n int, req *discoveryv3.DeltaDiscoveryRequest) ([]*discoveryv3.DeltaDiscoveryResponse, error)

// received is a request as the fake server saw it, with the method it came on.
type received[Req any] struct {
	method string
	req    *Req
}

type fake struct {
	sotw      sotwScript
	delta     deltaScript
	sotwReqs  chan received[discoveryv3.DiscoveryRequest]
	deltaReqs chan received[discoveryv3.DeltaDiscoveryRequest]
	// ended receives the method of each stream whose handler returned.
	ended chan string
}

type adsServer struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	f *fake
}

func (s adsServer) StreamAggregatedResources(st grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	return serve(st, s.f.sotwReqs, s.f.ended, s.f.sotw)
}

func (s adsServer) DeltaAggregatedResources(st grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	return serve(st, s.f.deltaReqs, s.f.ended, s.f.delta)
}

type cdsServer struct {
	clusterservice.UnimplementedClusterDiscoveryServiceServer
	f *fake
}

func (s cdsServer) StreamClusters(st grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	return serve(st, s.f.sotwReqs, s.f.ended, s.f.sotw)
}

type edsServer struct {
	endpointservice.UnimplementedEndpointDiscoveryServiceServer
	f *fake
}

func (s edsServer) DeltaEndpoints(st grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	return serve(st, s.f.deltaReqs, s.f.ended, s.f.delta)
}

func serve[Req, Resp any](st grpc.BidiStreamingServer[Req, Resp], reqs chan<- received[Req], ended chan<- string,
	script func(int, *Req) ([]*Resp, error)) error {
	method, _ := grpc.Method(st.Context())
	defer func() { ended <- method }()
	for n := 0; ; n++ {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		reqs <- received[Req]{method: method, req: req}
		resps, err := script(n, req)
		if err != nil {
			return err
		}
		for _, r := range resps {
			if err := st.Send(r); err != nil {
				return nil
			}
		}
	}
}

// startFake serves the scripts on 127.0.0.1 and returns a client connection to
// them. A nil script answers nothing.
func startFake(t *testing.T, sotw sotwScript, delta deltaScript) (*fake, *grpc.ClientConn) {
	t.Helper()
	if sotw == nil {
		sotw = func(int, *discoveryv3.DiscoveryRequest) ([]*discoveryv3.DiscoveryResponse, error) { return nil, nil }
	}
	if delta == nil {
		delta = func(int, *discoveryv3.DeltaDiscoveryRequest) ([]*discoveryv3.DeltaDiscoveryResponse, error) {
			return nil, nil
		}
	}
	f := &fake{
		sotw:      sotw,
		delta:     delta,
		sotwReqs:  make(chan received[discoveryv3.DiscoveryRequest], 100),
		deltaReqs: make(chan received[discoveryv3.DeltaDiscoveryRequest], 100),
		ended:     make(chan string, 100),
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, adsServer{f: f})
	clusterservice.RegisterClusterDiscoveryServiceServer(srv, cdsServer{f: f})
	endpointservice.RegisterEndpointDiscoveryServiceServer(srv, edsServer{f: f})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return f, cc
}

// nextReq returns the next request the fake server received on ch.
func nextReq[Req any](t *testing.T, ch <-chan received[Req]) received[Req] {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the server received no request within 5s")
		return received[Req]{}
	}
}

// Fixtures.

var testNode = &corev3.Node{Id: "edge-1", Cluster: "edge"}

func sotwResp(typeURL, version, nonce string, ms ...proto.Message) *discoveryv3.DiscoveryResponse {
	r := &discoveryv3.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce}
	for _, m := range ms {
		r.Resources = append(r.Resources, xdstest.Any(m))
	}
	return r
}

func deltaRes(name, version string, m proto.Message) *discoveryv3.Resource {
	return &discoveryv3.Resource{Name: name, Version: version, Resource: xdstest.Any(m)}
}

func wrapped(t *testing.T, w *discoveryv3.Resource) *anypb.Any {
	t.Helper()
	a, err := anypb.New(w)
	require.NoError(t, err)
	return a
}

// answers scripts a SotW stream: the n-th request gets answers[n], if any.
func answers(rs ...[]*discoveryv3.DiscoveryResponse) sotwScript {
	return func(n int, _ *discoveryv3.DiscoveryRequest) ([]*discoveryv3.DiscoveryResponse, error) {
		if n < len(rs) {
			return rs[n], nil
		}
		return nil, nil
	}
}

func one(r *discoveryv3.DiscoveryResponse) []*discoveryv3.DiscoveryResponse {
	return []*discoveryv3.DiscoveryResponse{r}
}

// recorder stands in for the test in a conversation that is meant to fail: it
// records failures instead of reporting them, and ends the conversation on Fatalf
// as testing.T does.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// failures runs body in place of a test body and returns what it reported.
func failures(t *testing.T, body func(tb testing.TB)) string {
	t.Helper()
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(rec)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the conversation did not finish within 10s")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return strings.Join(rec.failures, "\n")
}

// SotW conversations.

// R2: the Node goes in the first request of the stream only; R3: nonce and version
// are per type.
func TestRequestSendsNodeOnlyOnFirstRequest(t *testing.T) {
	f, cc := startFake(t, answers(one(sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web"), xdstest.Cluster("api")))), nil)
	c := ADS(t, cc, testNode)

	r := c.Request(protocol.TypeCluster, "web", "api").
		ExpectResponse(TypeURL(protocol.TypeCluster), Version("1"), Nonce("n1"), Names("api", "web"), NamesInOrder("web", "api"))
	assert.Equal(t, []string{"web", "api"}, r.Names())

	first := nextReq(t, f.sotwReqs)
	assert.Equal(t, adsMethod, first.method)
	assert.True(t, proto.Equal(testNode, first.req.GetNode()), "first request node: %v", first.req.GetNode())
	assert.Equal(t, protocol.TypeCluster, first.req.GetTypeUrl())
	assert.Equal(t, []string{"web", "api"}, first.req.GetResourceNames())
	assert.Empty(t, first.req.GetVersionInfo())
	assert.Empty(t, first.req.GetResponseNonce())

	c.Request(protocol.TypeEndpoint, "web")
	eds := nextReq(t, f.sotwReqs)
	assert.Nil(t, eds.req.GetNode(), "R2: only the first request carries the node")
	assert.Equal(t, protocol.TypeEndpoint, eds.req.GetTypeUrl())
	assert.Empty(t, eds.req.GetResponseNonce(), "R3: no EDS response received yet")
	assert.Empty(t, eds.req.GetVersionInfo())

	c.Request(protocol.TypeCluster, "web", "api", "db")
	cds := nextReq(t, f.sotwReqs)
	assert.Nil(t, cds.req.GetNode())
	assert.Equal(t, []string{"web", "api", "db"}, cds.req.GetResourceNames())
	assert.Equal(t, "n1", cds.req.GetResponseNonce(), "echoes the last CDS nonce")
	assert.Empty(t, cds.req.GetVersionInfo(), "nothing ACKed yet")
}

// R4: an ACK echoes the version and nonce of the response it accepts, per type (R3).
func TestACKEchoesVersionAndNonce(t *testing.T) {
	f, cc := startFake(t, answers(
		one(sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web"))),
		one(sotwResp(protocol.TypeEndpoint, "7", "n2", xdstest.Endpoints("web", "10.0.0.1:80"))),
	), nil)
	c := ADS(t, cc, testNode)
	c.Request(protocol.TypeCluster, "web").ExpectResponse(Version("1"))
	c.Request(protocol.TypeEndpoint, "web").ExpectResponse(TypeURL(protocol.TypeEndpoint), Version("7"))
	nextReq(t, f.sotwReqs)
	nextReq(t, f.sotwReqs)

	c.ACK() // the type of the last response: EDS
	ack := nextReq(t, f.sotwReqs).req
	assert.Equal(t, protocol.TypeEndpoint, ack.GetTypeUrl())
	assert.Equal(t, "7", ack.GetVersionInfo())
	assert.Equal(t, "n2", ack.GetResponseNonce())
	assert.Equal(t, []string{"web"}, ack.GetResourceNames())
	assert.Nil(t, ack.GetErrorDetail())
	assert.Nil(t, ack.GetNode())

	c.ACK(protocol.TypeCluster)
	ack = nextReq(t, f.sotwReqs).req
	assert.Equal(t, protocol.TypeCluster, ack.GetTypeUrl())
	assert.Equal(t, "1", ack.GetVersionInfo())
	assert.Equal(t, "n1", ack.GetResponseNonce())
	assert.Equal(t, []string{"web"}, ack.GetResourceNames())

	c.Request(protocol.TypeCluster, "web", "api")
	req := nextReq(t, f.sotwReqs).req
	assert.Equal(t, "1", req.GetVersionInfo(), "a request carries the last ACKed version")
	assert.Equal(t, "n1", req.GetResponseNonce())
}

// R5: a NACK carries the nonce of the rejected response, an error_detail, and the
// last version the client accepted.
func TestNACKSendsErrorDetailAndLastACKedVersion(t *testing.T) {
	f, cc := startFake(t, answers(
		one(sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web"))),
		one(sotwResp(protocol.TypeCluster, "2", "n2", xdstest.Cluster("web"))),
	), nil)
	c := ADS(t, cc, testNode)
	c.Request(protocol.TypeCluster, "web").ExpectResponse(Version("1"))
	c.ACK()
	c.ExpectResponse(Version("2"))
	c.NACK("bad timeout")
	nextReq(t, f.sotwReqs)
	nextReq(t, f.sotwReqs)

	nack := nextReq(t, f.sotwReqs).req
	assert.Equal(t, protocol.TypeCluster, nack.GetTypeUrl())
	assert.Equal(t, "1", nack.GetVersionInfo(), "R5: the last ACKed version, not the rejected one")
	assert.Equal(t, "n2", nack.GetResponseNonce())
	assert.Equal(t, []string{"web"}, nack.GetResourceNames())
	require.NotNil(t, nack.GetErrorDetail())
	assert.Equal(t, int32(codes.InvalidArgument), nack.GetErrorDetail().GetCode())
	assert.Equal(t, "bad timeout", nack.GetErrorDetail().GetMessage())

	c.Request(protocol.TypeCluster, "web")
	req := nextReq(t, f.sotwReqs).req
	assert.Equal(t, "1", req.GetVersionInfo(), "a NACK does not move the ACKed version")
	assert.Equal(t, "n2", req.GetResponseNonce())
	assert.Nil(t, req.GetErrorDetail())
}

func TestNACKBeforeAnyACKCarriesNoVersion(t *testing.T) {
	f, cc := startFake(t, answers(one(sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web")))), nil)
	c := ADS(t, cc, testNode)
	c.Request(protocol.TypeCluster, "web").ExpectResponse()
	c.NACK("no")
	nextReq(t, f.sotwReqs)
	nack := nextReq(t, f.sotwReqs).req
	assert.Empty(t, nack.GetVersionInfo(), "R5: nothing accepted yet")
	assert.Equal(t, "n1", nack.GetResponseNonce())
	assert.NotNil(t, nack.GetErrorDetail())
}

func TestExpectNothingPassesOnSilence(t *testing.T) {
	f, cc := startFake(t, nil, nil)
	c := ADS(t, cc, testNode, WithQuiet(100*time.Millisecond))
	c.Request(protocol.TypeCluster, "web")
	assert.Equal(t, protocol.TypeCluster, nextReq(t, f.sotwReqs).req.GetTypeUrl())
	c.ExpectNothing()
}

func TestExpectNothingFailsOnAResponse(t *testing.T) {
	_, cc := startFake(t, answers(one(sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web")))), nil)
	got := failures(t, func(tb testing.TB) {
		c := ADS(tb, cc, testNode, WithQuiet(2*time.Second))
		c.Request(protocol.TypeCluster, "web")
		c.ExpectNothing()
	})
	assert.Contains(t, got, "expected no response within 2s")
	assert.Contains(t, got, `CDS version="1" nonce="n1" names=[web]`)
}

func TestExpectResponseFailureShowsWhatArrived(t *testing.T) {
	_, cc := startFake(t, answers(one(sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web")))), nil)
	got := failures(t, func(tb testing.TB) {
		ADS(tb, cc, testNode).Request(protocol.TypeCluster, "web").ExpectResponse(Version("2"), Names("web", "api"))
	})
	assert.Contains(t, got, `CDS version="1" nonce="n1" names=[web]`)
	assert.Contains(t, got, `version: got "1", want "2"`)
	assert.Contains(t, got, "missing [api]")
}

func TestExpectResponseTimesOut(t *testing.T) {
	_, cc := startFake(t, nil, nil)
	got := failures(t, func(tb testing.TB) {
		ADS(tb, cc, testNode, WithTimeout(100*time.Millisecond)).Request(protocol.TypeCluster, "web").ExpectResponse()
	})
	assert.Contains(t, got, "no response within 100ms")
	assert.Contains(t, got, "no response received yet")
}

// R1: a nonce that repeats on a stream fails the conversation.
func TestRepeatedNonceFailsTheConversation(t *testing.T) {
	_, cc := startFake(t, answers([]*discoveryv3.DiscoveryResponse{
		sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web")),
		sotwResp(protocol.TypeEndpoint, "1", "n1", xdstest.Endpoints("web")),
	}), nil)
	got := failures(t, func(tb testing.TB) {
		c := ADS(tb, cc, testNode)
		c.Request(protocol.TypeCluster, "web").ExpectResponse()
		c.ExpectResponse()
	})
	assert.Contains(t, got, `R1: nonce "n1" was already used on this stream`)
}

// Send puts the request on the wire as given, and the stream's first request is
// then spent: later helper requests carry no Node (R2).
func TestSendIsRawAndExpectErrorReturnsTheStatus(t *testing.T) {
	f, cc := startFake(t, func(n int, req *discoveryv3.DiscoveryRequest) ([]*discoveryv3.DiscoveryResponse, error) {
		if n == 1 {
			return nil, status.Error(codes.InvalidArgument, "R2: first request has no node")
		}
		return nil, nil
	}, nil)
	c := ADS(t, cc, testNode)
	c.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster, ResponseNonce: "stale"})
	c.Request(protocol.TypeCluster, "web")
	err := c.ExpectError(codes.InvalidArgument)
	assert.Equal(t, "R2: first request has no node", status.Convert(err).Message())

	raw := nextReq(t, f.sotwReqs).req
	assert.Nil(t, raw.GetNode())
	assert.Equal(t, "stale", raw.GetResponseNonce())
	assert.Nil(t, nextReq(t, f.sotwReqs).req.GetNode(), "the first request was the raw one")
}

func TestExpectErrorFailsOnAnotherCode(t *testing.T) {
	_, cc := startFake(t, func(int, *discoveryv3.DiscoveryRequest) ([]*discoveryv3.DiscoveryResponse, error) {
		return nil, status.Error(codes.InvalidArgument, "bad")
	}, nil)
	got := failures(t, func(tb testing.TB) {
		ADS(tb, cc, testNode).Request(protocol.TypeCluster).ExpectError(codes.Internal)
	})
	assert.Contains(t, got, "stream ended with InvalidArgument")
	assert.Contains(t, got, "want Internal")
}

func TestExpectErrorOKOnCleanEnd(t *testing.T) {
	_, cc := startFake(t, nil, nil)
	c := ADS(t, cc, testNode)
	c.Request(protocol.TypeCluster, "web")
	c.Close() // the fake server returns OK when the client stops sending
	assert.NoError(t, c.ExpectError(codes.OK))
}

// Cancel drops what is on its way: the second response of the batch is never
// received, the stream ends for the server too, and later waits report Canceled.
func TestCancelLosesWhatIsInFlight(t *testing.T) {
	f, cc := startFake(t, answers([]*discoveryv3.DiscoveryResponse{
		sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web")),
		sotwResp(protocol.TypeEndpoint, "1", "n2", xdstest.Endpoints("web", "10.0.0.1:80")),
	}), nil)
	c := ADS(t, cc, testNode)
	c.Request(protocol.TypeCluster).ExpectResponse(TypeURL(protocol.TypeCluster))
	c.Cancel()
	assert.Error(t, c.ExpectError(codes.Canceled))
	select {
	case m := <-f.ended:
		assert.Equal(t, adsMethod, m)
	case <-time.After(5 * time.Second):
		t.Fatal("the server stream is still open after Cancel")
	}
}

func TestTypedUsesThePerTypeService(t *testing.T) {
	f, cc := startFake(t, answers(one(sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web")))), nil)
	c := Typed(t, cc, protocol.TypeCluster, testNode)
	c.Request(protocol.TypeCluster, "web").ExpectResponse(Names("web"))
	got := nextReq(t, f.sotwReqs)
	assert.Equal(t, "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters", got.method)
	assert.True(t, proto.Equal(testNode, got.req.GetNode()))
}

func TestTypedFailsForATypeWithoutAService(t *testing.T) {
	_, cc := startFake(t, nil, nil)
	got := failures(t, func(tb testing.TB) { Typed(tb, cc, protocol.TypeVirtualHost, testNode) })
	assert.Contains(t, got, "no state-of-the-world service for type "+protocol.TypeVirtualHost)
}

func TestStreamEndsWithTheTest(t *testing.T) {
	f, cc := startFake(t, nil, nil)
	t.Run("conversation", func(t *testing.T) {
		ADS(t, cc, testNode).Request(protocol.TypeCluster, "web")
		nextReq(t, f.sotwReqs)
	})
	select {
	case m := <-f.ended:
		assert.Equal(t, adsMethod, m)
	case <-time.After(5 * time.Second):
		t.Fatal("the server stream is still open after the test ended")
	}
}

// Delta conversations.

func TestDeltaSubscribeUnsubscribeACKNACK(t *testing.T) {
	f, cc := startFake(t, nil, func(n int, _ *discoveryv3.DeltaDiscoveryRequest) ([]*discoveryv3.DeltaDiscoveryResponse, error) {
		switch n {
		case 0:
			return []*discoveryv3.DeltaDiscoveryResponse{{
				TypeUrl: protocol.TypeCluster, Nonce: "d1",
				Resources: []*discoveryv3.Resource{
					deltaRes("web", "v1", xdstest.Cluster("web")),
					deltaRes("api", "v2", xdstest.Cluster("api")),
				},
			}}, nil
		case 2:
			return []*discoveryv3.DeltaDiscoveryResponse{{
				TypeUrl: protocol.TypeCluster, Nonce: "d2", RemovedResources: []string{"api"},
			}}, nil
		}
		return nil, nil
	})
	c := DeltaADS(t, cc, testNode)

	r := c.Subscribe(protocol.TypeCluster, "web", "api").
		ExpectResponse(DTypeURL(protocol.TypeCluster), Updated("api", "web"), NoRemoved(), VersionOf("web", "v1"), VersionOf("api", "v2"))
	assert.True(t, proto.Equal(xdstest.Cluster("web"), r.Resource("web")))
	sub := nextReq(t, f.deltaReqs)
	assert.Equal(t, deltaADSMethod, sub.method)
	assert.True(t, proto.Equal(testNode, sub.req.GetNode()), "R2: node on the first request")
	assert.Equal(t, protocol.TypeCluster, sub.req.GetTypeUrl())
	assert.Equal(t, []string{"web", "api"}, sub.req.GetResourceNamesSubscribe())
	assert.Empty(t, sub.req.GetResourceNamesUnsubscribe())
	assert.Empty(t, sub.req.GetResponseNonce())
	assert.Empty(t, sub.req.GetInitialResourceVersions())

	c.ACK()
	ack := nextReq(t, f.deltaReqs).req
	assert.Nil(t, ack.GetNode(), "R2: node on the first request only")
	assert.Equal(t, protocol.TypeCluster, ack.GetTypeUrl())
	assert.Equal(t, "d1", ack.GetResponseNonce(), "D1: an ACK echoes the nonce")
	assert.Nil(t, ack.GetErrorDetail())
	assert.Empty(t, ack.GetResourceNamesSubscribe())

	c.Unsubscribe(protocol.TypeCluster, "api")
	unsub := nextReq(t, f.deltaReqs).req
	assert.Nil(t, unsub.GetNode())
	assert.Equal(t, []string{"api"}, unsub.GetResourceNamesUnsubscribe())
	assert.Empty(t, unsub.GetResourceNamesSubscribe())

	c.ExpectResponse(Removed("api"), Updated())
	c.NACK("cannot remove", protocol.TypeCluster)
	nack := nextReq(t, f.deltaReqs).req
	assert.Equal(t, "d2", nack.GetResponseNonce())
	require.NotNil(t, nack.GetErrorDetail(), "D1: a NACK carries error_detail")
	assert.Equal(t, int32(codes.InvalidArgument), nack.GetErrorDetail().GetCode())
	assert.Equal(t, "cannot remove", nack.GetErrorDetail().GetMessage())
}

// D3: the first request of a type on a reconnect names what the client holds.
func TestDeltaInitialVersions(t *testing.T) {
	f, cc := startFake(t, nil, nil)
	c := DeltaADS(t, cc, testNode)
	held := map[string]string{"web": "v1", "api": "v2"}
	c.InitialVersions(protocol.TypeEndpoint, held, "web", "api")
	held["db"] = "v3" // the request was built from a copy
	req := nextReq(t, f.deltaReqs).req
	assert.True(t, proto.Equal(testNode, req.GetNode()))
	assert.Equal(t, protocol.TypeEndpoint, req.GetTypeUrl())
	assert.Equal(t, map[string]string{"web": "v1", "api": "v2"}, req.GetInitialResourceVersions())
	assert.Equal(t, []string{"web", "api"}, req.GetResourceNamesSubscribe())
	assert.Empty(t, req.GetResponseNonce())
}

func TestDeltaTypedUsesThePerTypeService(t *testing.T) {
	f, cc := startFake(t, nil, func(int, *discoveryv3.DeltaDiscoveryRequest) ([]*discoveryv3.DeltaDiscoveryResponse, error) {
		return []*discoveryv3.DeltaDiscoveryResponse{{
			TypeUrl: protocol.TypeEndpoint, Nonce: "d1",
			Resources: []*discoveryv3.Resource{deltaRes("web", "v1", xdstest.Endpoints("web", "10.0.0.1:80"))},
		}}, nil
	})
	c := DeltaTyped(t, cc, protocol.TypeEndpoint, testNode)
	c.Subscribe(protocol.TypeEndpoint, "web").ExpectResponse(Updated("web"))
	assert.Equal(t, "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints", nextReq(t, f.deltaReqs).method)
}

func TestDeltaRepeatedNonceFailsTheConversation(t *testing.T) {
	_, cc := startFake(t, nil, func(int, *discoveryv3.DeltaDiscoveryRequest) ([]*discoveryv3.DeltaDiscoveryResponse, error) {
		return []*discoveryv3.DeltaDiscoveryResponse{{TypeUrl: protocol.TypeCluster, Nonce: "d1"}}, nil
	})
	got := failures(t, func(tb testing.TB) {
		c := DeltaADS(tb, cc, testNode)
		c.Subscribe(protocol.TypeCluster, "web").ExpectResponse()
		c.Subscribe(protocol.TypeCluster, "api").ExpectResponse()
	})
	assert.Contains(t, got, `R1: nonce "d1" was already used on this stream`)
}

// The stream checks, run on every response.

func TestCheckResponse(t *testing.T) {
	web, api := xdstest.Cluster("web"), xdstest.Cluster("api")
	tests := []struct {
		name string
		seen []string
		resp *discoveryv3.DiscoveryResponse
		want string // "" for no error
	}{
		{"valid", []string{"n0"}, sotwResp(protocol.TypeCluster, "1", "n1", web, api), ""},
		{"R1 repeated nonce", []string{"n1"}, sotwResp(protocol.TypeCluster, "1", "n1", web), `R1: nonce "n1" was already used`},
		{"R1 no nonce", nil, sotwResp(protocol.TypeCluster, "1", "", web), "R1: the response has no nonce"},
		{"R13 duplicate name", nil, sotwResp(protocol.TypeCluster, "1", "n1", web, api, xdstest.Cluster("web")), `R13: resource "web" appears more than once`},
		{"wrong type", nil, sotwResp(protocol.TypeCluster, "1", "n1", web, xdstest.Endpoints("api")), `resource "api" has type EDS in a CDS response`},
		{"undecodable", nil, &discoveryv3.DiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "n1",
			Resources: []*anypb.Any{{TypeUrl: "type.googleapis.com/example.Unknown"}}}, "resource 0:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, n := range tt.seen {
				seen[n] = true
			}
			err := checkResponse(seen, &Response{tt.resp})
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.want)
			}
			if tt.resp.GetNonce() != "" {
				assert.True(t, seen[tt.resp.GetNonce()], "the nonce is recorded")
			}
		})
	}
}

func TestCheckResponseWrappedResources(t *testing.T) {
	heartbeat := wrapped(t, &discoveryv3.Resource{Name: "web", Version: "1"})
	full := wrapped(t, &discoveryv3.Resource{Name: "web", Version: "1", Resource: xdstest.Any(xdstest.Cluster("web"))})
	r := &Response{&discoveryv3.DiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "n1", Resources: []*anypb.Any{heartbeat, full}}}
	assert.ErrorContains(t, checkResponse(map[string]bool{}, r), `R13: resource "web" appears more than once`)

	r.Resources = []*anypb.Any{heartbeat, xdstest.Any(xdstest.Cluster("api"))}
	r.DiscoveryResponse.Nonce = "n2"
	assert.NoError(t, checkResponse(map[string]bool{}, r))
}

func TestCheckDeltaResponse(t *testing.T) {
	web := deltaRes("web", "v1", xdstest.Cluster("web"))
	tests := []struct {
		name string
		seen []string
		resp *discoveryv3.DeltaDiscoveryResponse
		want string
	}{
		{"valid", []string{"d0"}, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "d1",
			Resources: []*discoveryv3.Resource{web}, RemovedResources: []string{"api"}}, ""},
		{"R1 repeated nonce", []string{"d1"}, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "d1"},
			`R1: nonce "d1" was already used`},
		{"R1 no nonce", nil, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeCluster}, "R1: the response has no nonce"},
		{"R13 updated twice", nil, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "d1",
			Resources: []*discoveryv3.Resource{web, deltaRes("web", "v2", xdstest.Cluster("web"))}},
			`R13: resource "web" is updated more than once`},
		{"R13 removed twice", nil, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "d1",
			RemovedResources: []string{"api"}, RemovedResourceNames: []*discoveryv3.ResourceName{{Name: "api"}}},
			`R13: resource "api" is removed more than once`},
		{"R13 updated and removed", nil, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "d1",
			Resources: []*discoveryv3.Resource{web}, RemovedResources: []string{"web"}},
			`R13: resource "web" is both updated and removed`},
		{"no name", nil, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeCluster, Nonce: "d1",
			Resources: []*discoveryv3.Resource{{Version: "v1", Resource: xdstest.Any(xdstest.Cluster("web"))}}},
			"resource 0 has no name"},
		{"wrong type", nil, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: protocol.TypeEndpoint, Nonce: "d1",
			Resources: []*discoveryv3.Resource{web}}, `resource "web" has type CDS in a EDS response`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, n := range tt.seen {
				seen[n] = true
			}
			err := checkDeltaResponse(seen, &DeltaResponse{tt.resp})
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.want)
			}
		})
	}
}

// Responses and matchers.

func TestResponseAccessors(t *testing.T) {
	web := xdstest.Cluster("web")
	r := &Response{&discoveryv3.DiscoveryResponse{
		TypeUrl: protocol.TypeCluster, VersionInfo: "3", Nonce: "n3",
		Resources: []*anypb.Any{
			xdstest.Any(web),
			wrapped(t, &discoveryv3.Resource{Name: "api", Version: "3"}), // a TTL heartbeat
			wrapped(t, &discoveryv3.Resource{Resource: xdstest.Any(xdstest.Cluster("db"))}),
		},
	}}
	assert.Equal(t, "3", r.Version())
	assert.Equal(t, "n3", r.Nonce())
	assert.Equal(t, []string{"web", "api", "db"}, r.Names())
	assert.True(t, proto.Equal(web, r.Resource("web")))
	assert.True(t, proto.Equal(xdstest.Cluster("db"), r.Resource("db")), "a wrapper without a name is named by its body")
	assert.Nil(t, r.Resource("api"), "a heartbeat has no body")
	assert.Nil(t, r.Resource("absent"))
	assert.Equal(t, `CDS version="3" nonce="n3" names=[web api db]`, r.String())

	d := &DeltaResponse{&discoveryv3.DeltaDiscoveryResponse{
		TypeUrl: protocol.TypeCluster, Nonce: "d1",
		Resources:            []*discoveryv3.Resource{deltaRes("web", "v1", web), {ResourceName: &discoveryv3.ResourceName{Name: "xdstp://a/t/api"}, Version: "v2"}},
		RemovedResources:     []string{"db"},
		RemovedResourceNames: []*discoveryv3.ResourceName{{Name: "cache"}},
	}}
	assert.Equal(t, []string{"web", "xdstp://a/t/api"}, d.Updated())
	assert.Equal(t, []string{"db", "cache"}, d.Removed())
	assert.Equal(t, "v1", d.VersionOf("web"))
	assert.Equal(t, "v2", d.VersionOf("xdstp://a/t/api"))
	assert.Empty(t, d.VersionOf("db"))
	assert.True(t, proto.Equal(web, d.Resource("web")))
	assert.Nil(t, d.Resource("xdstp://a/t/api"))
	assert.Nil(t, d.Resource("absent"))
	assert.Equal(t, `CDS system_version="" nonce="d1" updated=[web xdstp://a/t/api] removed=[db cache]`, d.String())
}

func TestMatchersReportMismatches(t *testing.T) {
	r := &Response{sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web"), xdstest.Cluster("api"))}
	empty := &Response{sotwResp(protocol.TypeCluster, "1", "n1")}
	tests := []struct {
		name string
		m    Match
		r    *Response
		want string // "" when the matcher must pass
	}{
		{"type ok", TypeURL(protocol.TypeCluster), r, ""},
		{"type", TypeURL(protocol.TypeEndpoint), r, "type: got CDS, want EDS"},
		{"version ok", Version("1"), r, ""},
		{"version", Version("2"), r, `version: got "1", want "2"`},
		{"version not ok", VersionNot("0"), r, ""},
		{"version not", VersionNot("1"), r, `version: got "1", want any other`},
		{"names ok", Names("api", "web"), r, ""},
		{"names", Names("web", "db"), r, "names: got [web api], want [web db] (missing [db], unexpected [api])"},
		{"names count", Names("web", "web", "api"), r, "names: got [web api], want [web web api] (missing [web])"},
		{"names in order ok", NamesInOrder("web", "api"), r, ""},
		{"names in order", NamesInOrder("api", "web"), r, "names in order: got [web api], want [api web]"},
		{"empty ok", Empty(), empty, ""},
		{"empty", Empty(), r, "want no resources, got 2: [web api]"},
		{"nonce ok", Nonce("n1"), r, ""},
		{"nonce", Nonce("n2"), r, `nonce: got "n1", want "n2"`},
		{"check", Check(func(*Response) error { return fmt.Errorf("custom") }), r, "custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m(tt.r)
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.EqualError(t, err, tt.want)
			}
		})
	}
}

func TestDeltaMatchersReportMismatches(t *testing.T) {
	r := &DeltaResponse{&discoveryv3.DeltaDiscoveryResponse{
		TypeUrl: protocol.TypeEndpoint, Nonce: "d1",
		Resources:        []*discoveryv3.Resource{deltaRes("web", "v1", xdstest.Endpoints("web"))},
		RemovedResources: []string{"api"},
	}}
	tests := []struct {
		name string
		m    DeltaMatch
		want string
	}{
		{"type ok", DTypeURL(protocol.TypeEndpoint), ""},
		{"type", DTypeURL(protocol.TypeCluster), "type: got EDS, want CDS"},
		{"updated ok", Updated("web"), ""},
		{"updated", Updated("web", "db"), "updated: got [web], want [web db] (missing [db])"},
		{"removed ok", Removed("api"), ""},
		{"removed", Removed(), "removed: got [api], want [] (unexpected [api])"},
		{"no removed", NoRemoved(), "removed: got [api], want none"},
		{"version of ok", VersionOf("web", "v1"), ""},
		{"version of", VersionOf("web", "v2"), `version of "web": got "v1", want "v2"`},
		{"version of absent", VersionOf("db", "v1"), `version of "db": not updated (updated: [web]), want "v1"`},
		{"check", DCheck(func(*DeltaResponse) error { return fmt.Errorf("custom") }), "custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m(r)
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.EqualError(t, err, tt.want)
			}
		})
	}
}

func TestMatchAllReportsEveryMismatch(t *testing.T) {
	r := &Response{sotwResp(protocol.TypeCluster, "1", "n1", xdstest.Cluster("web"))}
	err := matchAll(r, []Match{Version("2"), Names("api"), Nonce("n1")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `version: got "1", want "2"`)
	assert.Contains(t, err.Error(), "names: got [web], want [api]")
	assert.NotContains(t, err.Error(), "nonce")
}
