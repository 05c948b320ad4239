package admin

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
)

const testToken = "7f3c1e0d9a8b4c2e"

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

// With --admin-token, CSDS and the debug pages answer only a caller that
// presents it: none is Unauthenticated (401), a wrong one PermissionDenied
// (403). The probes, the metrics and the index page stay open.
func TestAdminTokenRequired(t *testing.T) {
	ts := startTestServer(t, func(o *Options) { o.Token = testToken })
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	c.Request(protocol.TypeCluster).ExpectResponse()
	eventually(t, "the stream", func() bool { return len(ts.xds.Streams()) == 1 })

	csds := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc)
	fetch := func(authorization string) (*statusv3.ClientStatusResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if authorization != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
		}
		return csds.FetchClientStatus(ctx, &statusv3.ClientStatusRequest{})
	}
	_, err := fetch("")
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "--admin-token")
	for _, wrong := range []string{"Bearer nope", "Basic " + testToken, testToken} {
		_, err = fetch(wrong)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%q: %v", wrong, err)
	}
	resp, err := fetch("Bearer " + testToken)
	require.NoError(t, err)
	assert.Equal(t, []string{"envoy-1"}, nodeIDs(resp))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := csds.StreamClientStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&statusv3.ClientStatusRequest{}))
	_, err = stream.Recv()
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	for _, path := range []string{"/debug/clients", "/debug/config?node=envoy-1", "/debug/config?scope=default", "/debug/reload"} {
		r := getAuth(t, ts.admin.URL, path, "")
		assert.Equal(t, http.StatusUnauthorized, r.StatusCode, path)
		assert.Equal(t, `Bearer realm="leanxds admin"`, r.Header.Get("WWW-Authenticate"), path)
		assert.Equal(t, http.StatusForbidden, getAuth(t, ts.admin.URL, path, "Bearer nope").StatusCode, path)
		assert.Equal(t, http.StatusOK, getAuth(t, ts.admin.URL, path, "Bearer "+testToken).StatusCode, path)
	}
	for _, path := range []string{"/", "/healthz", "/readyz", "/metrics"} {
		assert.Equal(t, http.StatusOK, getAuth(t, ts.admin.URL, path, "").StatusCode, path)
	}
}

// from returns a context of a gRPC call from addr, with an authorization
// (none if empty).
func from(addr, authorization string) context.Context {
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		panic(err)
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: ap})
	if authorization != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
	}
	return ctx
}

// Without --admin-token, CSDS and the debug pages answer callers on this host
// only; the token, once set, is what lets a remote caller in. (The remote
// callers are made up: tests only listen on 127.0.0.1.)
func TestAdminLocalOnlyWithoutToken(t *testing.T) {
	page := requireAdmin(adminAuth{token: newAdminToken("", "")}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	call := func(h http.Handler, remote, authorization string) int {
		r := httptest.NewRequest(http.MethodGet, "/debug/clients", nil)
		r.RemoteAddr = remote
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	assert.Equal(t, http.StatusOK, call(page, "127.0.0.1:40000", ""))
	assert.Equal(t, http.StatusOK, call(page, "[::1]:40000", ""))
	assert.Equal(t, http.StatusForbidden, call(page, "192.0.2.10:40000", ""))
	assert.Equal(t, http.StatusForbidden, call(page, "192.0.2.10:40000", "Bearer "+testToken), "no token is set")

	withToken := requireAdmin(adminAuth{token: newAdminToken(testToken, "")}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	assert.Equal(t, http.StatusOK, call(withToken, "192.0.2.10:40000", "Bearer "+testToken))
	assert.Equal(t, http.StatusUnauthorized, call(withToken, "127.0.0.1:40000", ""), "a token, once set, is required of every caller")

	visible := csdsAccess(newAdminToken("", ""), nil)
	see, err := visible(from("127.0.0.1:40000", ""))
	require.NoError(t, err)
	assert.True(t, see("anyone"))
	_, err = visible(from("[::1]:40000", ""))
	require.NoError(t, err)
	_, err = visible(from("192.0.2.10:40000", ""))
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "open to callers on this host only, since --admin-token is not set")

	see, err = csdsAccess(newAdminToken(testToken, ""), nil)(from("192.0.2.10:40000", "bearer "+testToken))
	require.NoError(t, err)
	assert.True(t, see("anyone"))
}

// Under --node-identity, a CSDS caller without a token sees what its
// certificate allows (its own node, or every node for a --csds-readers
// identity); with the admin token, every node; with a wrong one, nothing.
func TestAdminTokenWithNodeIdentity(t *testing.T) {
	ownNode := func(context.Context) (func(string) bool, error) {
		return func(id string) bool { return id == "envoy-1" }, nil
	}
	visible := csdsAccess(newAdminToken(testToken, ""), ownNode)
	see, err := visible(from("192.0.2.10:40000", ""))
	require.NoError(t, err)
	assert.True(t, see("envoy-1"))
	assert.False(t, see("envoy-2"))

	see, err = visible(from("192.0.2.10:40000", "Bearer "+testToken))
	require.NoError(t, err)
	assert.True(t, see("envoy-2"))

	_, err = visible(from("127.0.0.1:40000", "Bearer nope"))
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
}
