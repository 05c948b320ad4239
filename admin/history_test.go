package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// fetchBody gets an admin path as a local caller, returning code and body.
func fetchBody(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// /debug/history lists the kept revisions of every scope, newest first, each
// with its source and what it changed; the newest of each scope is marked
// current. ?scope= lists one scope; without ?format=json it is HTML.
func TestHistoryPage(t *testing.T) {
	ts := startTestServer(t)
	first := ts.st.View().Revision()
	_, err := ts.st.CommitWith(store.CommitOptions{Source: "dir /etc/leanxds"},
		store.SetNamed("canary", "web", xdstest.Cluster("web")), store.SetNamed("canary", "api", xdstest.Cluster("api")))
	require.NoError(t, err)
	_, err = ts.st.CommitWith(store.CommitOptions{Source: "dir /etc/leanxds"}, store.Delete("canary", protocol.TypeCluster, "api"))
	require.NoError(t, err)
	cur := ts.st.View().Revision()

	code, body := fetchBody(t, ts.admin.URL, "/debug/history?format=json&scope=canary")
	require.Equal(t, http.StatusOK, code, body)
	var page HistoryPage
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	assert.Equal(t, cur, page.Revision)
	require.Len(t, page.Revisions, 2)
	assert.Equal(t, HistoryEntry{Revision: cur, Scope: "canary", At: page.Revisions[0].At, Source: "dir /etc/leanxds",
		Resources: 1, Removed: 1, Names: []string{"-CDS/api"}, Current: true}, page.Revisions[0])
	assert.Equal(t, 2, page.Revisions[1].Added)
	assert.False(t, page.Revisions[1].Current)

	_, body = fetchBody(t, ts.admin.URL, "/debug/history?format=json")
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	scopes := map[string]int{}
	for _, e := range page.Revisions {
		scopes[e.Scope]++
	}
	assert.Equal(t, map[string]int{"canary": 2, "default": 1}, scopes)
	assert.Equal(t, first, page.Revisions[len(page.Revisions)-1].Revision)

	code, body = fetchBody(t, ts.admin.URL, "/debug/history")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "<title>leanxds history</title>")
	assert.Contains(t, body, "-CDS/api")
	assert.Contains(t, body, "dir /etc/leanxds")

	withToken := startTestServer(t, func(o *Options) { o.Token = testToken })
	assert.Equal(t, http.StatusUnauthorized, getAuth(t, withToken.admin.URL, "/debug/history", "").StatusCode)
}

// Without Rollouts, POST /admin/rollback rolls the store back itself; with
// NoRollback it is not served.
func TestRollbackEndpointWithoutRollouts(t *testing.T) {
	ts := startTestServer(t, func(o *Options) { o.Token = testToken })
	_, err := ts.st.Commit(store.SetNamed("default", "extra", xdstest.Cluster("extra")))
	require.NoError(t, err)
	require.NotNil(t, ts.st.View().Table("default", protocol.TypeCluster).Get("extra"))

	resp := postAuth(t, ts.admin.URL, "/admin/rollback", "Bearer "+testToken)
	var r RollbackResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	resp.Body.Close()
	assert.True(t, r.Changed)
	assert.Nil(t, ts.st.View().Table("default", protocol.TypeCluster).Get("extra"), "the revision before the newest")
	assert.Equal(t, "rollback (admin)", ts.st.View().History("default")[0].Source)

	off := startTestServer(t, func(o *Options) { o.Token = testToken; o.NoRollback = true })
	resp = postAuth(t, off.admin.URL, "/admin/rollback", "Bearer "+testToken)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
