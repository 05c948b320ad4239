package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
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
		getJSON(t, ts.admin.URL, "/debug/clients", &clients)
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

	getJSON(t, ts.admin.URL, "/debug/clients?verbose", &clients)
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
	_, err := ts.source.Reload()
	require.Error(t, err)
	code, body := get(t, ts.admin.URL, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "LAST RELOAD REJECTED")
	assert.Contains(t, body, "broken.yaml")
	assert.Contains(t, body, `CDS "broken"`)
	assert.Contains(t, body, "connect_timeout")
	assert.Contains(t, body, "rejected  1 reloads")

	var state reloadState
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
