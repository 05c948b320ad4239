package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// /debug/clients shows each stream's versions sent and ACKed and its last NACK;
// ?verbose lists the names.
func TestDebugClients(t *testing.T) {
	ts := startTestServer(t)
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	cds := c.Request(protocol.TypeCluster).ExpectResponse()
	c.ACK()
	eds := c.Request(protocol.TypeEndpoint, "web", "api", "gone").ExpectResponse()
	c.NACK("bad endpoints")

	var clients []Client
	eventually(t, "the NACK", func() bool {
		clients = getClients(t, ts.admin.URL, "/debug/clients")
		return len(clients) == 1 && len(clients[0].Types) == 2 && clients[0].Types[1].LastNACK != nil
	})
	cl := clients[0]
	assert.Equal(t, "envoy-1", cl.NodeID)
	assert.Equal(t, "edge", cl.Cluster)
	assert.Equal(t, "default", cl.Scope)
	assert.Equal(t, "sotw", cl.Variant)
	assert.False(t, cl.ConnectedSince.IsZero())
	cdsT, edsT := cl.Types[0], cl.Types[1]
	assert.Equal(t, "CDS", cdsT.Type)
	assert.True(t, cdsT.Wildcard)
	assert.Equal(t, cds.Version(), cdsT.VersionSent)
	assert.Equal(t, cds.Version(), cdsT.VersionACKed)
	assert.Equal(t, "EDS", edsT.Type)
	assert.Equal(t, 3, edsT.Subscribed)
	assert.Equal(t, 1, edsT.Missing)
	assert.Nil(t, edsT.Names, "names only with ?verbose")
	assert.Equal(t, eds.Version(), edsT.VersionSent)
	assert.Empty(t, edsT.VersionACKed)
	assert.Equal(t, "bad endpoints", edsT.LastNACK.Message)
	assert.Equal(t, eds.Version(), edsT.LastNACK.RejectedVersion)
	assert.True(t, edsT.LastNACK.Current)

	clients = getClients(t, ts.admin.URL, "/debug/clients?verbose")
	assert.Equal(t, []string{"api", "gone", "web"}, clients[0].Types[1].Names)
	assert.Equal(t, []string{"gone"}, clients[0].Types[1].MissingNames)
}

// /debug/config?node=ID shows what the node is served, as protojson, with each
// resource's version and status; ?scope=NAME a scope's content. Secrets are
// redacted.
func TestDebugConfig(t *testing.T) {
	ts := startTestServer(t)
	_, err := ts.st.Commit(store.Set("default", xdstest.Secret("server-cert")))
	require.NoError(t, err)
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	c.Request(protocol.TypeCluster).ExpectResponse()
	c.ACK()
	c.Request(protocol.TypeSecret, "server-cert", "upstream-ca").ExpectResponse()

	var got struct {
		Node    string         `json:"node"`
		Streams []StreamConfig `json:"streams"`
	}
	eventually(t, "the ACK", func() bool {
		getJSON(t, ts.admin.URL, "/debug/config?node=envoy-1", &got)
		return len(got.Streams) == 1 && len(got.Streams[0].Types) == 2 && got.Streams[0].Types[1].VersionACKed != ""
	})
	v := ts.st.View()
	cdsT := got.Streams[0].Types[1]
	assert.Equal(t, "CDS", cdsT.Type)
	require.Len(t, cdsT.Resources, 3)
	web := cdsT.Resources[2]
	assert.Equal(t, "web", web.Name)
	assert.Equal(t, v.Table("default", protocol.TypeCluster).Get("web").Version, web.Version)
	assert.Equal(t, "ACKED", web.Status)
	var cluster map[string]any
	require.NoError(t, json.Unmarshal(web.Resource, &cluster))
	assert.Equal(t, "web", cluster["name"])
	assert.Equal(t, "EDS", cluster["type"])

	sdsT := got.Streams[0].Types[0]
	assert.Equal(t, "SDS", sdsT.Type)
	assert.Equal(t, "REQUESTED", sdsT.Resources[0].Status)
	assert.Contains(t, string(sdsT.Resources[0].Resource), redacted)

	code, body := get(t, ts.admin.URL, "/debug/config?scope=default")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"upstream-ca"`)
	assert.Contains(t, body, redacted)
	// protojson writes bytes in base64: the key must not be there in that form.
	key := xdstest.Secret("x").GetTlsCertificate().GetPrivateKey().GetInlineBytes()
	require.NotEmpty(t, key)
	assert.NotContains(t, body, base64.StdEncoding.EncodeToString(key))
	assert.Contains(t, body, base64.StdEncoding.EncodeToString(xdstest.Secret("x").GetTlsCertificate().GetCertificateChain().GetInlineBytes()))

	code, _ = get(t, ts.admin.URL, "/debug/config?node=nobody")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, ts.admin.URL, "/debug/config")
	assert.Equal(t, http.StatusBadRequest, code)
}

// /healthz and /readyz answer; the admin page shows how the config was last
// applied, the errors of a rejected reload (saying the last good config is
// still served), a held reload and a stale source; /debug/reload the same as
// JSON.
func TestAdminPage(t *testing.T) {
	ts := startTestServer(t)
	code, _ := get(t, ts.admin.URL, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, body := get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready: config loaded\n", body)

	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	ts.source.set(func(st *SourceStatus) {
		st.LastApplied, st.Revision, st.Files, st.Scopes = at, 7, 5, map[string]int{"default": 11, "team-a": 1}
		st.Rejected, st.LastRejected = 1, at.Add(time.Minute)
		st.Errors = []string{`broken.yaml: CDS "broken": connect_timeout: must be positive`}
		st.Warnings = []string{`route "r" names cluster "gone"`}
	})
	code, body = get(t, ts.admin.URL, "/")
	assert.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		"config    /etc/leanxds\n",
		"applied   2026-05-04T03:02:01Z (revision 7): 12 resources from 5 files\n          scope \"default\": 11 resources\n          scope \"team-a\": 1 resources\n",
		"LAST RELOAD REJECTED at 2026-05-04T03:03:01Z; the last good config is still served:\n  broken.yaml: CDS \"broken\": connect_timeout",
		"rejected  1 reloads",
		"warnings:\n  route \"r\" names cluster \"gone\"\n",
		"clients   0 streams connected, 0 rejecting their newest config (NACK)",
		"POST /reload[?confirm=true]",
	} {
		assert.Contains(t, body, want)
	}
	assert.NotContains(t, body, "RELOAD HELD")
	assert.NotContains(t, body, "STALE")

	var state SourceStatus
	getJSON(t, ts.admin.URL, "/debug/reload", &state)
	assert.Equal(t, 1, state.Rejected)
	assert.Equal(t, 11, state.Scopes["default"])

	ts.source.set(func(st *SourceStatus) {
		st.Held = &HeldReload{At: at, Deletions: []Deletion{{Scope: "default", Type: "CDS", Deleted: 15, Of: 20}}}
		st.Stale, st.StaleSince = "the directory does not exist", at
		st.Writing, st.WritingSince = "clusters.yaml", at
	})
	_, body = get(t, ts.admin.URL, "/")
	assert.Contains(t, body, "RELOAD HELD at 2026-05-04T03:02:01Z")
	assert.Contains(t, body, `  deletes 15 of 20 CDS in scope "default"`)
	assert.Contains(t, body, "STALE since 2026-05-04T03:02:01Z")
	assert.Contains(t, body, "waiting   for clusters.yaml to be quiet")
	code, body = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusOK, code, "held and stale: the last good config is still served")
	assert.Equal(t, "ready: config loaded; config directory stale since 2026-05-04T03:02:01Z: not watched (the directory does not exist); "+
		"reload held since 2026-05-04T03:02:01Z: it would delete 15 of 20 CDS in scope \"default\"; confirm with `leanxds reload --confirm`\n", body)
	getJSON(t, ts.admin.URL, "/debug/reload", &state)
	require.NotNil(t, state.Held)
	assert.Equal(t, 15, state.Held.Deletions[0].Deleted)
}

// Without a source or a reloader, the page, /readyz and the routes say
// nothing of one: what an embedder that fills the store itself mounts.
func TestAdminWithoutSource(t *testing.T) {
	ts := startTestServer(t, func(o *Options) { o.Source, o.Reloader, o.Ready = nil, nil, nil })
	code, body := get(t, ts.admin.URL, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.NotContains(t, body, "config    ")
	assert.NotContains(t, body, "/reload")
	code, body = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready\n", body)
	code, _ = get(t, ts.admin.URL, "/debug/reload")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, -1.0, metric(t, ts.admin.URL, "leanxds_config_source_stale"))
}

// The snapshot's part of the page and of /readyz: where it is written, what
// the restore at start did, and how the writes went.
func TestAdminPageSnapshot(t *testing.T) {
	b, err := persist.Open(context.Background(), filepath.Join(t.TempDir(), "snap.pb"), persist.BackendOptions{})
	require.NoError(t, err)
	snap := &fakeSnapshot{backend: b}
	ts := startTestServer(t, func(o *Options) { o.Snapshot = snap })
	_, body := get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, "ready: config loaded; snapshot not restored yet\n", body)
	_, page := get(t, ts.admin.URL, "/")
	assert.Contains(t, page, "snapshot  "+b.String()+"\n          not written since start (every 1m0s if the config changed)\n")

	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	snap.set(persist.Stats{Writes: 2, LastSuccess: at, LastRevision: 5, LastBytes: 1234, Failures: 1, LastError: "disk full"},
		&persist.Info{Location: b.String(), From: b.String(), Restored: true, Header: persist.Header{Resources: 11, Revision: 4}})
	_, body = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, "ready: config loaded; snapshot restored: 11 resources, revision 4, from "+b.String()+"\n", body)
	_, page = get(t, ts.admin.URL, "/")
	assert.Contains(t, page, "          at start: restored 11 resources")
	assert.Contains(t, page, "          written 2026-05-04T03:02:01Z (revision 5, 1234 bytes); 2 written since start\n")
	assert.Contains(t, page, "          LAST WRITE FAILED (1 failures since start): disk full\n")

	snap.set(persist.Stats{}, &persist.Info{Location: b.String()})
	_, body = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, "ready: config loaded; no snapshot at "+b.String()+"\n", body)
}

// POST /reload asks the reloader, with ?confirm, and answers its outcome with
// a status code that says it: 200 applied or unchanged, 409 held, 503 busy,
// 422 rejected; a bad ?confirm is 400.
func TestReloadEndpoint(t *testing.T) {
	ts := startTestServer(t, func(o *Options) { o.Token = testToken })
	post := func(path string) (int, ReloadResult) {
		resp := postAuth(t, ts.admin.URL, path, "Bearer "+testToken)
		defer resp.Body.Close()
		var r ReloadResult
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		return resp.StatusCode, r
	}
	for outcome, code := range map[string]int{
		ReloadApplied: http.StatusOK, ReloadUnchanged: http.StatusOK, ReloadHeld: http.StatusConflict,
		ReloadBusy: http.StatusServiceUnavailable, ReloadRejected: http.StatusUnprocessableEntity,
	} {
		ts.source.answer(ReloadResult{Outcome: outcome, Errors: []string{"e"}})
		got, r := post("/reload")
		assert.Equal(t, code, got, outcome)
		assert.Equal(t, outcome, r.Outcome)
	}
	ts.source.answer(ReloadResult{Outcome: ReloadApplied, Revision: 3, Set: 1})
	_, r := post("/reload?confirm=true")
	assert.Equal(t, ReloadResult{Outcome: ReloadApplied, Revision: 3, Set: 1}, r)
	assert.Equal(t, []bool{false, false, false, false, false, true}, ts.source.calls())

	resp := postAuth(t, ts.admin.URL, "/reload?confirm=maybe", "Bearer "+testToken)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Len(t, ts.source.calls(), 6, "a bad request reloads nothing")
}

// A browser's cross-origin request cannot make the server reload: a web page
// must not confirm a held reload, even from a browser that holds the token.
func TestReloadRefusesCrossOriginRequests(t *testing.T) {
	ts := startTestServer(t, func(o *Options) { o.Token = testToken })
	req, err := http.NewRequest(http.MethodPost, ts.admin.URL+"/reload?confirm=true", nil)
	require.NoError(t, err)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, ts.source.calls())
}

// /readyz fails until the initial config is loaded.
func TestReadyzBeforeLoad(t *testing.T) {
	ts := startTestServer(t)
	ts.ready.Store(false)
	code, _ := get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// pagedServer serves the edge example with the page limits of opts to the
// nodes ids, each holding the clusters and the endpoints of web and api,
// ACKed.
func pagedServer(t *testing.T, ids []string, opts func(*Options)) *testServer {
	t.Helper()
	ts := startTestServer(t, opts)
	for _, id := range ids {
		c := conv.ADS(t, ts.cc, node(id, "edge"))
		c.Request(protocol.TypeCluster).ExpectResponse()
		c.ACK()
		c.Request(protocol.TypeEndpoint, "web", "api").ExpectResponse()
		c.ACK()
	}
	eventually(t, "every ACK", func() bool {
		acked := 0
		for _, s := range ts.xds.Streams() {
			if len(s.Types) == 2 && s.Types[0].VersionACKed != "" && s.Types[1].VersionACKed != "" {
				acked++
			}
		}
		return acked == len(ids)
	})
	return ts
}

// getPages follows the next paths of a paged debug page from path, checking
// that each body is within maxBytes, and returns the bodies.
func getPages(t *testing.T, base, path string, maxBytes int) []string {
	t.Helper()
	var bodies []string
	for path != "" {
		require.Less(t, len(bodies), 100, "a next path that goes on forever")
		code, body := get(t, base, path)
		require.Equal(t, http.StatusOK, code, body)
		assert.LessOrEqual(t, len(body), maxBytes, path)
		bodies = append(bodies, body)
		var next struct {
			Next string `json:"next"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &next))
		path = next.Next
	}
	return bodies
}

// /debug/clients lists the streams a page at a time: at most --admin-max-page
// (also the most a ?limit gets), within --admin-max-bytes, each page with the
// path of the next; a stream whose entry alone exceeds the budget is refused
// with 422, saying why.
func TestDebugClientsPages(t *testing.T) {
	ids := []string{"envoy-a", "envoy-b", "envoy-c", "envoy-d", "envoy-e"}
	collect := func(ts *testServer, path string, maxBytes int) (nodes []string, pages int) {
		bodies := getPages(t, ts.admin.URL, path, maxBytes)
		for _, b := range bodies {
			var page ClientsPage
			require.NoError(t, json.Unmarshal([]byte(b), &page))
			assert.Equal(t, len(ids), page.Total)
			assert.Equal(t, len(nodes), page.Offset)
			for _, c := range page.Clients {
				nodes = append(nodes, c.NodeID)
			}
		}
		return nodes, len(bodies)
	}

	ts := pagedServer(t, ids, func(o *Options) { o.MaxPage = 2 })
	nodes, pages := collect(ts, "/debug/clients?limit=10", DefaultMaxBytes)
	assert.Equal(t, ids, nodes)
	assert.Equal(t, 3, pages, "2 + 2 + 1: the limit is capped at --admin-max-page")
	for _, bad := range []string{"?limit=0", "?limit=x", "?offset=-1"} {
		code, body := get(t, ts.admin.URL, "/debug/clients"+bad)
		assert.Equal(t, http.StatusBadRequest, code, bad)
		assert.Contains(t, body, "want a positive number", bad)
	}
	code, body := get(t, ts.admin.URL, "/debug/clients?offset=9")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"clients": []`)

	// The whole list is one page under the default budget; half of it makes
	// several pages, each within it.
	code, body = get(t, ts.admin.URL, "/debug/clients?verbose&limit=2")
	require.Equal(t, http.StatusOK, code)
	half := pagedServer(t, ids, func(o *Options) { o.MaxBytes = len(body) })
	nodes, pages = collect(half, "/debug/clients?verbose", len(body))
	assert.Equal(t, ids, nodes)
	assert.Greater(t, pages, 2)

	tiny := pagedServer(t, ids[:1], func(o *Options) { o.MaxBytes = 400 })
	code, body = get(t, tiny.admin.URL, "/debug/clients?verbose")
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.Contains(t, body, `node \"envoy-a\" alone exceeds the page budget of 400 bytes (--admin-max-bytes)`)
}

// /debug/config?node=ID and ?scope=NAME list resources a page at a time: every
// page has every stream and type, with its total, and the resources of the
// window; a resource alone over the budget is refused with 422, naming it.
func TestDebugConfigPages(t *testing.T) {
	nodeResources := func(ts *testServer, maxBytes int) (got []string, pages int) {
		bodies := getPages(t, ts.admin.URL, "/debug/config?node=envoy-1", maxBytes)
		for _, b := range bodies {
			var page NodeConfigPage
			require.NoError(t, json.Unmarshal([]byte(b), &page))
			assert.Equal(t, 5, page.Total)
			assert.Equal(t, len(got), page.Offset)
			require.Len(t, page.Streams, 1)
			require.Len(t, page.Streams[0].Types, 2)
			assert.Equal(t, 3, page.Streams[0].Types[0].Total)
			assert.Equal(t, 2, page.Streams[0].Types[1].Total)
			for _, tc := range page.Streams[0].Types {
				for _, r := range tc.Resources {
					assert.Equal(t, "ACKED", r.Status)
					assert.NotEmpty(t, r.Resource)
					got = append(got, tc.Type+" "+r.Name)
				}
			}
		}
		return got, len(bodies)
	}
	all := []string{"CDS api", "CDS payments", "CDS web", "EDS api", "EDS web"}
	ts := pagedServer(t, []string{"envoy-1"}, func(o *Options) { o.MaxPage = 2 })
	got, pages := nodeResources(ts, DefaultMaxBytes)
	assert.Equal(t, all, got)
	assert.Equal(t, 3, pages)

	// A budget of the largest resource and a bit (a page is counted with room
	// for the longest next path it may have, and some spacing): a page for each,
	// or about.
	largest := 0
	for i := range all {
		code, body := get(t, ts.admin.URL, fmt.Sprintf("/debug/config?node=envoy-1&limit=1&offset=%d", i))
		require.Equal(t, http.StatusOK, code)
		largest = max(largest, len(body))
	}
	small := pagedServer(t, []string{"envoy-1"}, func(o *Options) { o.MaxBytes = largest + 256 })
	got, pages = nodeResources(small, largest+256)
	assert.Equal(t, all, got)
	assert.GreaterOrEqual(t, pages, 4)

	var scoped []string
	for _, b := range getPages(t, ts.admin.URL, "/debug/config?scope=default", DefaultMaxBytes) {
		var page ScopeConfigPage
		require.NoError(t, json.Unmarshal([]byte(b), &page))
		assert.Equal(t, 11, page.Total)
		for _, tc := range page.Types {
			for _, r := range tc.Resources {
				scoped = append(scoped, tc.Type+" "+r.Name)
			}
		}
	}
	assert.Len(t, scoped, 11)
	assert.Subset(t, scoped, []string{"SDS upstream-ca", "CDS web", "EDS web", "LDS public", "RDS public-routes"})

	tiny := pagedServer(t, []string{"envoy-1"}, func(o *Options) { o.MaxBytes = 1000 })
	code, body := get(t, tiny.admin.URL, "/debug/config?node=envoy-1")
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.Contains(t, body, `resource \"api\" alone exceeds the page budget of 1000 bytes (--admin-max-bytes)`)
}
