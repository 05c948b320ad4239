package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// testServer is an xDS server with its admin server, as an embedder mounts
// them: a store holding the edge example in the default scope, a
// stream.Server on 127.0.0.1 with CSDS beside it, and the admin pages on an
// httptest server, with fakes for the source and the snapshot.
type testServer struct {
	st      *store.Store
	xds     *stream.Server
	metrics *Metrics
	a       *Admin
	source  *fakeSource
	ready   atomic.Bool
	cc      *grpc.ClientConn
	// admin serves the admin pages.
	admin *httptest.Server
}

// startTestServer starts a testServer; opts adjust its admin.Options.
func startTestServer(t testing.TB, opts ...func(*Options)) *testServer {
	t.Helper()
	ts := &testServer{st: store.New(), source: &fakeSource{st: SourceStatus{Dir: "/etc/leanxds", Loaded: true}}}
	commitExample(t, ts.st, "default", "edge")
	ts.ready.Store(true)
	ts.metrics = NewMetrics(ts.st)
	// The fleet tests open a hundred streams and more on one connection.
	ts.xds = stream.New(ts.st, stream.Options{Hooks: ts.metrics.Hooks(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxStreamsPerConn: -1})
	o := Options{Store: ts.st, Streams: ts.xds, Metrics: ts.metrics, Source: ts.source, Reloader: ts.source, Ready: ts.ready.Load}
	for _, f := range opts {
		f(&o)
	}
	ts.a = New(o)
	g := grpc.NewServer(ts.xds.GRPCOptions()...)
	ts.xds.Register(g)
	ts.a.RegisterCSDS(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(ts.xds.Listener(lis)) }()
	ts.cc, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	ts.admin = httptest.NewServer(ts.a)
	t.Cleanup(func() {
		ts.admin.Close()
		_ = ts.cc.Close()
		ts.a.Shutdown()
		g.Stop()
	})
	return ts
}

// commitExample commits the resource files of examples/NAME as scope.
func commitExample(t testing.TB, st *store.Store, scope, name string) {
	t.Helper()
	changes := []store.Change{store.ReplaceScope(scope)}
	for _, f := range []string{"clusters.yaml", "endpoints.yaml", "listeners.yaml", "routes.yaml", "secrets.yaml"} {
		rs, err := resources.Load(filepath.Join("..", "examples", name, f))
		require.NoError(t, err)
		for _, r := range rs {
			changes = append(changes, store.SetNamed(scope, r.Name, r.Message))
		}
	}
	_, err := st.Commit(changes...)
	require.NoError(t, err)
}

// fakeSource is a Source and a Reloader whose status a test sets, and whose
// reloads answer what the test says.
type fakeSource struct {
	mu sync.Mutex
	st SourceStatus
	// result is what Reload answers; confirms records each call's confirm.
	result   ReloadResult
	confirms []bool
}

func (f *fakeSource) SourceStatus() SourceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSource) set(change func(*SourceStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.st)
}

// answer sets what Reload answers.
func (f *fakeSource) answer(r ReloadResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.result = r
}

// calls returns the confirm of each Reload so far.
func (f *fakeSource) calls() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.confirms...)
}

func (f *fakeSource) Reload(_ context.Context, confirm bool) ReloadResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.confirms = append(f.confirms, confirm)
	return f.result
}

// fakeSnapshot is a Snapshot whose state a test sets.
type fakeSnapshot struct {
	backend  persist.Backend
	mu       sync.Mutex
	stats    persist.Stats
	restored *persist.Info
}

func (f *fakeSnapshot) set(stats persist.Stats, restored *persist.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats, f.restored = stats, restored
}

func (f *fakeSnapshot) Backend() persist.Backend { return f.backend }
func (f *fakeSnapshot) Interval() time.Duration  { return time.Minute }

func (f *fakeSnapshot) Stats() persist.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeSnapshot) Restored() *persist.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restored
}

func node(id, cluster string) *corev3.Node { return &corev3.Node{Id: id, Cluster: cluster} }

// eventually polls cond every 10ms until it holds, failing the test after 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get fetches an admin path and returns the status code and body.
func get(t testing.TB, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func getJSON(t testing.TB, base, path string, v any) {
	t.Helper()
	code, body := get(t, base, path)
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
}

// getClients returns the streams of a page of /debug/clients.
func getClients(t testing.TB, base, path string) []Client {
	t.Helper()
	var page ClientsPage
	getJSON(t, base, path, &page)
	return page.Clients
}

// metric returns the value of one sample of /metrics, given as it is printed
// (name{labels}); -1 when absent.
func metric(t testing.TB, base, sample string) float64 {
	t.Helper()
	_, body := get(t, base, "/metrics")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}
