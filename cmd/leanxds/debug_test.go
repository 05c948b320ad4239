package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/source"
)

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
func getClients(t *testing.T, base, path string) []clientJSON {
	t.Helper()
	var page clientsPageJSON
	getJSON(t, base, path, &page)
	return page.Clients
}

// /debug/clients shows each stream's versions sent and ACKed and its last NACK;
// ?verbose lists the names.
func TestDebugClients(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	cds := c.Request(protocol.TypeCluster).ExpectResponse()
	c.ACK()
	eds := c.Request(protocol.TypeEndpoint, "web", "api", "gone").ExpectResponse()
	c.NACK("bad endpoints")

	var clients []clientJSON
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
	dir := copyExample(t, "edge")
	writeFile(t, dir, "server-cert.json", resourceJSONFile(t, xdstest.Secret("server-cert")))
	ts := startTestServer(t, dir)
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	c.Request(protocol.TypeCluster).ExpectResponse()
	c.ACK()
	c.Request(protocol.TypeSecret, "server-cert", "upstream-ca").ExpectResponse()

	var got struct {
		Node    string             `json:"node"`
		Streams []streamConfigJSON `json:"streams"`
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

// /healthz and /readyz answer; the admin page shows the errors of a rejected
// reload and says the last good config is still served.
func TestAdminPage(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	code, _ := get(t, ts.admin.URL, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusOK, code)

	writeFile(t, ts.dir, "broken.yaml", cluster("broken", "-3s"))
	_, err := ts.source.Reload(context.Background(), false)
	require.Error(t, err)
	code, body := get(t, ts.admin.URL, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "LAST RELOAD REJECTED")
	assert.Contains(t, body, "broken.yaml")
	assert.Contains(t, body, `CDS "broken"`)
	assert.Contains(t, body, "connect_timeout")
	assert.Contains(t, body, "rejected  1 reloads")

	var state source.Status
	getJSON(t, ts.admin.URL, "/debug/reload", &state)
	assert.Equal(t, 1, state.Rejected)
	assert.Equal(t, 11, state.Scopes["default"])
}

// /readyz fails until the initial config is loaded.
func TestReadyzBeforeLoad(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	ts.ready.Store(false)
	code, _ := get(t, ts.admin.URL, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// pagedServer serves the edge example with the page limits of opts to the
// nodes ids, each holding the clusters and the endpoints of web and api,
// ACKed.
func pagedServer(t *testing.T, ids []string, opts func(*serveOptions)) *testServer {
	t.Helper()
	ts := startTestServer(t, copyExample(t, "edge"), opts)
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
			var page clientsPageJSON
			require.NoError(t, json.Unmarshal([]byte(b), &page))
			assert.Equal(t, len(ids), page.Total)
			assert.Equal(t, len(nodes), page.Offset)
			for _, c := range page.Clients {
				nodes = append(nodes, c.NodeID)
			}
		}
		return nodes, len(bodies)
	}

	ts := pagedServer(t, ids, func(o *serveOptions) { o.adminMaxPage = 2 })
	nodes, pages := collect(ts, "/debug/clients?limit=10", defaultAdminMaxBytes)
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
	half := pagedServer(t, ids, func(o *serveOptions) { o.adminMaxBytes = len(body) })
	nodes, pages = collect(half, "/debug/clients?verbose", len(body))
	assert.Equal(t, ids, nodes)
	assert.Greater(t, pages, 2)

	tiny := pagedServer(t, ids[:1], func(o *serveOptions) { o.adminMaxBytes = 400 })
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
			var page nodeConfigJSON
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
	ts := pagedServer(t, []string{"envoy-1"}, func(o *serveOptions) { o.adminMaxPage = 2 })
	got, pages := nodeResources(ts, defaultAdminMaxBytes)
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
	small := pagedServer(t, []string{"envoy-1"}, func(o *serveOptions) { o.adminMaxBytes = largest + 256 })
	got, pages = nodeResources(small, largest+256)
	assert.Equal(t, all, got)
	assert.GreaterOrEqual(t, pages, 4)

	var scoped []string
	for _, b := range getPages(t, ts.admin.URL, "/debug/config?scope=default", defaultAdminMaxBytes) {
		var page scopeConfigJSON
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

	tiny := pagedServer(t, []string{"envoy-1"}, func(o *serveOptions) { o.adminMaxBytes = 1000 })
	code, body := get(t, tiny.admin.URL, "/debug/config?node=envoy-1")
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.Contains(t, body, `resource \"api\" alone exceeds the page budget of 1000 bytes (--admin-max-bytes)`)
}
