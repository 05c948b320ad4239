package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
)

// The admin pages and CSDS are package admin's, tested there; these tests
// check that serve wires them to its config directory, its metrics and its
// flags.

const testToken = "7f3c1e0d9a8b4c2e"

// get fetches an admin path and returns the status code and body.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func getJSON(t *testing.T, base, path string, v any) {
	t.Helper()
	code, body := get(t, base, path)
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
}

// getClients returns the streams of a page of /debug/clients.
func getClients(t *testing.T, base, path string) []admin.Client {
	t.Helper()
	var page admin.ClientsPage
	getJSON(t, base, path, &page)
	return page.Clients
}

// getAuth fetches an admin path with an Authorization header (none if empty).
func getAuth(t *testing.T, base, path, authorization string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func fetchStatus(t *testing.T, cc grpc.ClientConnInterface, ms ...*matcherv3.NodeMatcher) *statusv3.ClientStatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := statusv3.NewClientStatusDiscoveryServiceClient(cc).FetchClientStatus(ctx, &statusv3.ClientStatusRequest{NodeMatchers: ms})
	require.NoError(t, err)
	return resp
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

// csdsTrio serves the edge example with a CSDS budget of maxBytes to three
// nodes, envoy-a, envoy-b and envoy-c, connected in that order, each holding
// the three clusters, ACKed: three node configs of the same size.
func csdsTrio(t *testing.T, maxBytes int) *testServer {
	t.Helper()
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) { o.csdsMaxBytes = maxBytes })
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

// The admin page shows the config directory as the source left it: the
// errors of a rejected reload, naming the file, resource and field, and
// /debug/reload the same as JSON; the metrics count the reloads.
func TestAdminPageShowsTheDirectory(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	code, ready := get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready: config loaded\n", ready)

	editFile(t, ts.dir, "endpoints.yaml", "port_value: 8081", "port_value: 9081")
	_, err := ts.source.Reload(context.Background(), false)
	require.NoError(t, err)
	writeFile(t, ts.dir, "broken.yaml", cluster("broken", "-3s"))
	_, err = ts.source.Reload(context.Background(), false)
	require.Error(t, err)
	code, body := get(t, ts.admin.URL, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "config    "+ts.dir+"\n")
	assert.Contains(t, body, "LAST RELOAD REJECTED")
	assert.Contains(t, body, "broken.yaml")
	assert.Contains(t, body, `CDS "broken"`)
	assert.Contains(t, body, "connect_timeout")
	assert.Contains(t, body, "rejected  1 reloads")

	var state admin.SourceStatus
	getJSON(t, ts.admin.URL, "/debug/reload", &state)
	assert.Equal(t, 1, state.Rejected)
	assert.Equal(t, 11, state.Scopes["default"])
	assert.Equal(t, ts.dir, state.Dir)

	// The initial load and the edit; the broken file.
	assert.Equal(t, 2.0, metric(t, ts.admin.URL, `leanxds_config_reloads_total{result="applied"}`))
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, `leanxds_config_reloads_total{result="rejected"}`))
	assert.Equal(t, 2.0, metric(t, ts.admin.URL, "leanxds_store_commits_total"))
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, "leanxds_config_last_reload_successful"))
}

// Shutdown ends CSDS streams rather than waiting for their client.
func TestDrainEndsCSDSStreams(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc).StreamClientStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&statusv3.ClientStatusRequest{}))
	_, err = stream.Recv()
	require.NoError(t, err)
	ts.drain()
	_, err = stream.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "server shutting down", "ended by admin.Shutdown, not by the drain timeout")
}

// The binary takes its admin token from LEANXDS_ADMIN_TOKEN, and so does dump:
// dump run beside serve reads CSDS; without the token, or with another, it is
// refused, and so are the debug pages.
func TestBinaryAdminToken(t *testing.T) {
	p := startServe(t, t.TempDir(), []string{"LEANXDS_ADMIN_TOKEN=" + testToken}, "--config", copyExample(t, "edge"))
	assert.Equal(t, "admin token", p.logLine("xDS listening")["csds"])
	c := conv.ADS(t, dialInsecure(t, p.xds), node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	c.Request(protocol.TypeCluster).ExpectResponse()
	c.ACK()

	dump := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(leanxdsBinary(t), append([]string{"dump", "--server", p.xds}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := dump(nil)
	assert.Error(t, err)
	assert.Contains(t, out, "Unauthenticated")
	assert.Contains(t, out, "--admin-token")
	out, err = dump(nil, "--admin-token", "nope")
	assert.Error(t, err)
	assert.Contains(t, out, "PermissionDenied")

	eventually(t, "envoy-1 in the dump", func() bool {
		out, err = dump([]string{"LEANXDS_ADMIN_TOKEN=" + testToken})
		return err == nil && strings.Contains(out, "node envoy-1")
	}, func() string { return out })

	assert.Equal(t, http.StatusUnauthorized, getAuth(t, p.admin, "/debug/clients", "").StatusCode)
	assert.Equal(t, http.StatusOK, getAuth(t, p.admin, "/debug/clients", "Bearer "+testToken).StatusCode)
	p.stop(t)
}
