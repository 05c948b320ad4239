package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Options.Pprof mounts the Go profiles on /debug/pprof/, guarded like the
// other /debug/ pages: the token, or callers on this host only. Off, the
// pages are not found.
func TestPprof(t *testing.T) {
	call := func(a *Admin, path, remote, authorization string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = remote
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	paths := []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/pprof/symbol"}

	off := startTestServer(t).a
	for _, p := range paths {
		code, _ := call(off, p, "127.0.0.1:40000", "")
		assert.Equal(t, http.StatusNotFound, code, p)
	}
	_, index := call(off, "/", "127.0.0.1:40000", "")
	assert.NotContains(t, index, "/debug/pprof/")

	local := startTestServer(t, func(o *Options) { o.Pprof = true }).a
	for _, p := range paths {
		code, _ := call(local, p, "127.0.0.1:40000", "")
		assert.Equal(t, http.StatusOK, code, p)
		code, _ = call(local, p, "192.0.2.10:40000", "")
		assert.Equal(t, http.StatusForbidden, code, p)
	}
	_, body := call(local, "/debug/pprof/goroutine?debug=1", "127.0.0.1:40000", "")
	assert.Contains(t, body, "goroutine profile:")
	_, index = call(local, "/", "127.0.0.1:40000", "")
	assert.Contains(t, index, "/debug/pprof/")

	guarded := startTestServer(t, func(o *Options) { o.Pprof = true; o.Token = testToken }).a
	code, _ := call(guarded, "/debug/pprof/heap", "127.0.0.1:40000", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = call(guarded, "/debug/pprof/heap", "192.0.2.10:40000", "Bearer "+testToken)
	assert.Equal(t, http.StatusOK, code)
}
