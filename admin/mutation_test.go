package admin

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// postAuth posts to an admin path with an Authorization header (none if empty).
func postAuth(t *testing.T, base, path, authorization string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// errorOf reads the {"error": ...} answer of a refused call.
func errorOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var e struct{ Error string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	return e.Error
}

// Without a token or client certificates configured, POST /reload is off for
// every caller, local ones included: 403, saying how to turn it on. The
// read-only pages answer local callers as before.
func TestMutationsOffWithoutCredentials(t *testing.T) {
	ts := startTestServer(t)
	resp := postAuth(t, ts.admin.URL, "/reload", "")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "mutating admin endpoints are off: configure --admin-token-file or --admin-client-ca", errorOf(t, resp))
	resp = postAuth(t, ts.admin.URL, "/reload", "Bearer anything")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, mutationsOff, errorOf(t, resp))
	assert.Empty(t, ts.source.calls())
	assert.Equal(t, "off (configure --admin-token-file or --admin-client-ca)", ts.a.MutationGuard())

	code, _ := get(t, ts.admin.URL, "/debug/clients")
	assert.Equal(t, http.StatusOK, code, "read-only pages are unchanged")
}

// With a token, POST /reload wants it: none is 401 (with a WWW-Authenticate
// challenge), a wrong one 403, the right one reloads.
func TestMutationsNeedTheToken(t *testing.T) {
	ts := startTestServer(t, func(o *Options) { o.Token = testToken })
	ts.source.answer(ReloadResult{Outcome: ReloadUnchanged})
	resp := postAuth(t, ts.admin.URL, "/reload", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Bearer realm="leanxds admin"`, resp.Header.Get("WWW-Authenticate"))
	assert.Contains(t, errorOf(t, resp), "/reload changes what is served: it needs the admin token")
	resp = postAuth(t, ts.admin.URL, "/reload", "Bearer nope")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, errorOf(t, resp), "is not the admin token")
	assert.Empty(t, ts.source.calls())

	resp = postAuth(t, ts.admin.URL, "/reload", "Bearer "+testToken)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, ts.source.calls(), 1)
	assert.Equal(t, "admin token", ts.a.MutationGuard())
}

// A token file's first line is the token, for the mutating endpoints and the
// pages alike; written again, the new token replaces the old one without a
// restart. An empty file lets nobody in by token, and still counts as
// configured: the pages do not open to every local caller.
func TestTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("  first-token \nignored\n"), 0o600))
	ts := startTestServer(t, func(o *Options) { o.TokenFile = file })
	ts.source.answer(ReloadResult{Outcome: ReloadUnchanged})
	status := func(method, path, token string) int {
		var resp *http.Response
		if method == http.MethodPost {
			resp = postAuth(t, ts.admin.URL, path, token)
		} else {
			resp = getAuth(t, ts.admin.URL, path, token)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, status(http.MethodPost, "/reload", "Bearer first-token"))
	assert.Equal(t, http.StatusOK, status(http.MethodGet, "/debug/clients", "Bearer first-token"))
	assert.Equal(t, http.StatusUnauthorized, status(http.MethodGet, "/debug/clients", ""), "a token file makes the pages want the token")

	// A rotation: a new content (and a new modification time, however
	// coarse the file system's clock).
	require.NoError(t, os.WriteFile(file, []byte("second-token\n"), 0o600))
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(file, later, later))
	assert.Equal(t, http.StatusForbidden, status(http.MethodPost, "/reload", "Bearer first-token"))
	assert.Equal(t, http.StatusOK, status(http.MethodPost, "/reload", "Bearer second-token"))

	require.NoError(t, os.WriteFile(file, nil, 0o600))
	require.NoError(t, os.Chtimes(file, later.Add(time.Minute), later.Add(time.Minute)))
	assert.Equal(t, http.StatusForbidden, status(http.MethodPost, "/reload", "Bearer second-token"))
	assert.Equal(t, http.StatusForbidden, status(http.MethodPost, "/reload", "Bearer "))
	assert.Equal(t, http.StatusUnauthorized, status(http.MethodGet, "/debug/clients", ""))
	assert.Len(t, ts.source.calls(), 2)

	// Deleting the file revokes the token: nobody is let in, and the pages
	// still want a token; a file written again is read again.
	require.NoError(t, os.WriteFile(file, []byte("third-token\n"), 0o600))
	require.NoError(t, os.Chtimes(file, later.Add(2*time.Minute), later.Add(2*time.Minute)))
	assert.Equal(t, http.StatusOK, status(http.MethodPost, "/reload", "Bearer third-token"))
	require.NoError(t, os.Remove(file))
	assert.Equal(t, http.StatusForbidden, status(http.MethodPost, "/reload", "Bearer third-token"), "a deleted token file still lets its token in")
	assert.Equal(t, http.StatusUnauthorized, status(http.MethodGet, "/debug/clients", ""))
	require.NoError(t, os.WriteFile(file, []byte("fourth-token\n"), 0o600))
	assert.Equal(t, http.StatusOK, status(http.MethodPost, "/reload", "Bearer fourth-token"))
	assert.Len(t, ts.source.calls(), 4)
}

// With client certificates verified by the admin port, a caller whose
// certificate was verified may call the mutating endpoints and read the
// pages; one without is asked for credentials (401). A wrong token is refused
// even with a certificate.
func TestMutationsWithClientCertificate(t *testing.T) {
	auth := adminAuth{token: newAdminToken("", ""), clientCerts: true}
	called := 0
	h := requireMutation(auth, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called++ }))
	call := func(verified bool, authorization string) (int, string) {
		r := httptest.NewRequest(http.MethodPost, "/admin/rollout/abort", nil)
		r.RemoteAddr = "192.0.2.10:40000"
		if verified {
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
		} else {
			r.TLS = &tls.ConnectionState{}
		}
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	code, _ := call(true, "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, 1, called)
	code, body := call(false, "")
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Contains(t, body, "a client certificate signed by --admin-client-ca")
	code, _ = call(true, "Bearer nope")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, 1, called)
	assert.Equal(t, "client certificate", auth.mutations())

	page := requireAdmin(auth, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/debug/clients", nil)
	r.RemoteAddr = "192.0.2.10:40000"
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	w := httptest.NewRecorder()
	page.ServeHTTP(w, r)
	assert.Equal(t, http.StatusOK, w.Code, "a verified client reads the pages")
}
