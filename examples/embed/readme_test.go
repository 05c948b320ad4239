package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// The code blocks of the README's "Embedding" section are the regions of this
// file between "// README:begin" and "// README:end", in order:
// TestREADMEMatchesCode fails when the two drift, and the tests below run them.

// README:begin
// serve serves a cluster and its endpoints to the xDS clients of lis.
func serve(lis net.Listener, cluster *clusterv3.Cluster, loadAssignment *endpointv3.ClusterLoadAssignment) error {
	st := store.New()
	_, err := st.Commit(
		store.Set("edge", cluster),        // a *clusterv3.Cluster
		store.Set("edge", loadAssignment), // its *endpointv3.ClusterLoadAssignment
	)
	if err != nil {
		return err // it names every invalid resource and field; nothing changed
	}
	// A commit of content the store already holds changes nothing and wakes nobody.

	srv := stream.New(st, stream.Options{})
	g := grpc.NewServer(srv.GRPCOptions()...) // responses share bytes; streams per connection bounded
	srv.Register(g)
	return g.Serve(srv.Listener(lis)) // connections bounded; a client that stops reading is cut off
}

// README:end

// README:begin
// serveObserved serves st as serve does, with the admin pages on adminLis, and
// CSDS, the gRPC health service and server reflection beside the xDS services.
func serveObserved(st *store.Store, lis, adminLis net.Listener) error {
	metrics := admin.NewMetrics(st)
	srv := stream.New(st, stream.Options{Hooks: metrics.Hooks()})
	a := admin.New(admin.Options{Store: st, Streams: srv, Metrics: metrics})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	a.RegisterCSDS(g)           // CSDS beside the xDS services
	health := admin.NewHealth() // grpc.health.v1, for Kubernetes gRPC probes: NOT_SERVING
	health.Register(g)
	reflection.Register(g)     // grpcurl lists the services and calls them
	health.SetServing(true)    // st holds the config: SERVING (health.Shutdown() when draining)
	go http.Serve(adminLis, a) // /, /metrics, /healthz, /readyz, /debug/clients, /debug/config
	return g.Serve(srv.Listener(lis))
}

// README:end

// snippetsOf returns the Go code blocks of the section of markdown titled
// heading, up to the next section of its level.
func snippetsOf(t *testing.T, markdown, heading string) []string {
	t.Helper()
	_, section, ok := strings.Cut(markdown, "\n"+heading+"\n")
	require.True(t, ok, "no section %q", heading)
	level := heading[:strings.IndexByte(heading, ' ')+1]
	if end := strings.Index(section, "\n"+level); end >= 0 {
		section = section[:end]
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	return out
}

// regionsOf returns the regions of Go source marked "// README:begin" and
// "// README:end".
func regionsOf(t *testing.T, source string) []string {
	t.Helper()
	var out []string
	for _, m := range regexp.MustCompile(`(?s)// README:begin\n(.*?)\n// README:end\n`).FindAllStringSubmatch(source, -1) {
		out = append(out, m[1])
	}
	return out
}

// The README's embedding snippets are this file's marked regions, character
// for character: they compile, and the tests below run them.
func TestREADMEMatchesCode(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	code, err := os.ReadFile("readme_test.go")
	require.NoError(t, err)
	regions := regionsOf(t, string(code))
	require.Len(t, regions, 2)
	snippets := snippetsOf(t, string(readme), "## Embedding")
	require.Len(t, snippets, len(regions), "the README's Go blocks under Embedding, against the regions of examples/embed/readme_test.go")
	for i := range regions {
		assert.Equal(t, regions[i], snippets[i], "README snippet %d differs from region %d of examples/embed/readme_test.go: copy the region into the README", i+1, i+1)
	}
}

// The extraction finds what it should, and a changed snippet is told apart.
func TestREADMESnippetExtraction(t *testing.T) {
	md := "# T\n\n## Embedding\n\n```go\na := 1\n```\n\ntext\n\n```go\nb := 2\n```\n\n## Next\n\n```go\nc := 3\n```\n"
	assert.Equal(t, []string{"a := 1\n", "b := 2\n"}, snippetsOf(t, md, "## Embedding"))
	src := "x\n// README:begin\na := 1\n\n// README:end\ny\n// README:begin\nb := 2\n\n// README:end\n"
	assert.Equal(t, []string{"a := 1\n", "b := 2\n"}, regionsOf(t, src))
	assert.NotEqual(t, regionsOf(t, src), snippetsOf(t, strings.Replace(md, "b := 2", "b := 3", 1), "## Embedding"))
}

// listen listens on a free port of 127.0.0.1.
func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { lis.Close() })
	return lis
}

// dial connects to lis.
func dial(t *testing.T, lis net.Listener) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// fetchClusters asks for the clusters over ADS and returns their count.
func fetchClusters(t *testing.T, cc *grpc.ClientConn) int {
	t.Helper()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(t.Context())
	require.NoError(t, err)
	require.NoError(t, ads.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy-1", Cluster: "edge"}, TypeUrl: protocol.TypeCluster}))
	resp, err := ads.Recv()
	require.NoError(t, err)
	return len(resp.GetResources())
}

// The first snippet serves what it committed, and refuses an invalid resource.
func TestREADMEServe(t *testing.T) {
	lis := listen(t)
	served := make(chan error, 1)
	go func() { served <- serve(lis, xdstest.Cluster("web"), xdstest.Endpoints("web", "127.0.0.1:8080")) }()
	assert.Equal(t, 1, fetchClusters(t, dial(t, lis)))

	err := serve(listen(t), &clusterv3.Cluster{}, xdstest.Endpoints("web", "127.0.0.1:8080"))
	assert.Error(t, err, "a cluster without a name")
	lis.Close()
	assert.Error(t, <-served, "serving ends when its listener closes")
}

// The second snippet serves the store, the admin pages, CSDS, health and
// reflection.
func TestREADMEServeObserved(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set("edge", xdstest.Cluster("web")), store.Set("edge", xdstest.Endpoints("web", "127.0.0.1:8080")))
	require.NoError(t, err)
	lis, adminLis := listen(t), listen(t)
	go func() { _ = serveObserved(st, lis, adminLis) }()
	cc := dial(t, lis)
	assert.Equal(t, 1, fetchClusters(t, cc))

	resp, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	refl, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(t.Context())
	require.NoError(t, err)
	require.NoError(t, refl.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	listed, err := refl.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range listed.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	assert.Contains(t, names, "envoy.service.status.v3.ClientStatusDiscoveryService")

	page, err := http.Get("http://" + adminLis.Addr().String() + "/metrics")
	require.NoError(t, err)
	defer page.Body.Close()
	assert.Equal(t, http.StatusOK, page.StatusCode)
}
