package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
)

// dump prints, through CSDS, a table of what a node is served and its status;
// --output json and yaml print the whole response, resources included.
func TestDumpCommand(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	cds := c.Request(protocol.TypeCluster).ExpectResponse()
	c.ACK()
	c.Request(protocol.TypeEndpoint, "web").ExpectResponse()
	c.NACK("port 8081 is\nnot allowed")

	var out string
	eventually(t, "the NACK in the dump", func() bool {
		code, stdout, stderr := runArgs(t, nil, "dump", "--server", ts.addr, "--node", "envoy-1")
		require.Equal(t, 0, code, stderr)
		out = stdout
		return strings.Contains(out, "NACKED")
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	assert.Equal(t, `node envoy-1 (cluster "edge")`, lines[0])
	assert.Regexp(t, `^  TYPE +NAME +STATUS +VERSION +ERROR$`, lines[1])
	assert.Regexp(t, `^  CDS +api +ACKED +`+cds.Version()+`\s*$`, lines[2])
	assert.Regexp(t, `^  EDS +web +NACKED +- +rejected [0-9a-f]{16}: port 8081 is not allowed$`, lines[5])

	code, stdout, _ := runArgs(t, nil, "dump", "--server", ts.addr, "--node", "envoy-1", "--output", "json")
	require.Equal(t, 0, code)
	var resp map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &resp))
	assert.Contains(t, stdout, `"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster"`)
	assert.Contains(t, stdout, `"client_status": "NACKED"`)

	code, stdout, _ = runArgs(t, nil, "dump", "--server", ts.addr, "--output", "yaml")
	require.Equal(t, 0, code)
	require.NoError(t, yaml.Unmarshal([]byte(stdout), &resp))
	assert.Contains(t, stdout, "client_status: ACKED")

	code, _, stderr := runArgs(t, nil, "dump", "--server", ts.addr, "--node", "nobody")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `node "nobody" is not connected`)
}

// The table asks CSDS for no resource: it shows none, and a node whose config
// with its resources exceeds the server's budget still fits without them. The
// other outputs show the resources, and say what the budget refused.
func TestDumpTableWithinBudget(t *testing.T) {
	ts := csdsTrio(t, admin.DefaultCSDSMaxBytes)
	ctx := context.Background()
	one := &statusv3.ClientStatusRequest{NodeMatchers: []*matcherv3.NodeMatcher{{NodeId: exact("envoy-a")}}}
	csds := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc)
	with, err := csds.FetchClientStatus(ctx, one)
	require.NoError(t, err)
	one.ExcludeResourceContents = true
	without, err := csds.FetchClientStatus(ctx, one)
	require.NoError(t, err)
	require.Less(t, proto.Size(without), proto.Size(with))

	small := csdsTrio(t, proto.Size(without))
	code, stdout, stderr := runArgs(t, nil, "dump", "--server", small.addr, "--node", "envoy-a")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "node envoy-a")
	assert.Regexp(t, `(?m)^  CDS +web +ACKED `, stdout)

	code, _, stderr = runArgs(t, nil, "dump", "--server", small.addr, "--node", "envoy-a", "--output", "yaml")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "ResourceExhausted")
	assert.Contains(t, stderr, "1 nodes match, 0 fit")

	code, _, stderr = runArgs(t, nil, "dump", "--server", small.addr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "3 nodes match, 1 fit")
	assert.Contains(t, stderr, "--node ID shows one node")
}

// dump against a server that expects TLS, without TLS, says so and names the
// flag to pass; with TLS against a plaintext server, says that too.
func TestDumpTLSHint(t *testing.T) {
	pki := newTestPKI(t)
	pki.issue(t, "server", true, "leanxds")
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) {
		o.tlsCert, o.tlsKey = pki.path("server.crt"), pki.path("server.key")
	})
	code, _, stderr := runArgs(t, nil, "dump", "--server", ts.addr, "--timeout", "5s")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "the server expects TLS: pass --tls-ca FILE", stderr)

	code, stdout, stderr := runArgs(t, nil, "dump", "--server", ts.addr, "--tls-ca", pki.path("ca.crt"), "--timeout", "5s")
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "no client connected", "the server answered over TLS")

	plain := startTestServer(t, copyExample(t, "edge"))
	code, _, stderr = runArgs(t, nil, "dump", "--server", plain.addr, "--tls-ca", pki.path("ca.crt"), "--timeout", "5s")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "the server does not speak TLS: leave out --tls-ca", stderr)
	assert.NotContains(t, stderr, "expects TLS")
}
