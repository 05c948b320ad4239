package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"

	"github.com/leanxds/leanxds/examples/grpc/greeter"
)

// The walk-through of examples/grpc/README.md, on 127.0.0.1 with ports the
// kernel picks: leanxds serves the example, two greeter backends run, a client
// dialing xds:///greeter with grpc-go's xDS resolver and the example's
// bootstrap sees its calls spread over both; a locality's weight edited in the
// directory moves the calls.
func TestGRPCExampleWalkthrough(t *testing.T) {
	// Two backends, as `go run ./examples/grpc/server -listen ...` starts them.
	var backends [2]string
	for i := range backends {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		g := grpc.NewServer()
		greeter.Register(g, lis.Addr().String())
		go func() { _ = g.Serve(lis) }()
		t.Cleanup(g.Stop)
		backends[i] = lis.Addr().String()
	}
	dir := copyExample(t, "grpc")
	for i, port := range []string{"50051", "50052"} {
		_, p, err := net.SplitHostPort(backends[i])
		require.NoError(t, err)
		editFile(t, dir, "cluster.yaml", "port_value: "+port, "port_value: "+p)
	}
	// `go run ./cmd/leanxds serve --config examples/grpc`
	p := startServe(t, t.TempDir(), nil, "--config", dir)

	// The client, with the example's bootstrap pointed at the server's port.
	raw, err := os.ReadFile(filepath.Join(dir, "bootstrap.json"))
	require.NoError(t, err)
	var bootstrap map[string]any
	require.NoError(t, json.Unmarshal(raw, &bootstrap))
	bootstrap["xds_servers"].([]any)[0].(map[string]any)["server_uri"] = p.xds
	raw, err = json.Marshal(bootstrap)
	require.NoError(t, err)
	resolver, err := xds.NewXDSResolverWithConfigForTesting(raw)
	require.NoError(t, err)
	cc, err := grpc.NewClient("xds:///greeter", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Equal weights: both backends answer about half the calls. (grpc-go
	// picks a locality at random by weight: with 200 calls, a share below 30%
	// is more than five standard deviations away.)
	_, err = greeter.SayHello(ctx, cc, "first", grpc.WaitForReady(true))
	require.NoError(t, err, "the first call through xds:///greeter")
	tally, err := greeter.Spread(ctx, cc, 200, 0)
	require.NoError(t, err)
	t.Logf("equal weights: %s", tally)
	assert.InDelta(t, 0.5, tally.Share(backends[0]), 0.2, tally.String())
	assert.InDelta(t, 0.5, tally.Share(backends[1]), 0.2, tally.String())
	assert.Equal(t, 200, tally[backends[0]]+tally[backends[1]])

	// The second locality's weight goes from 1 to 3: it answers three calls
	// in four once the client has the new endpoints (and 62% or more, five
	// standard deviations below 75% with 400 calls, only then).
	editFile(t, dir, "cluster.yaml", "zone: b}\n    load_balancing_weight: 1", "zone: b}\n    load_balancing_weight: 3")
	deadline := time.Now().Add(20 * time.Second)
	for {
		tally, err = greeter.Spread(ctx, cc, 400, 0)
		require.NoError(t, err)
		if tally.Share(backends[1]) >= 0.62 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the calls did not move to the heavier locality: %s\n%s", tally, p.logText())
	}
	// A batch may straddle the update: the next one is all new.
	tally, err = greeter.Spread(ctx, cc, 400, 0)
	require.NoError(t, err)
	t.Logf("weights 1 and 3: %s", tally)
	assert.InDelta(t, 0.75, tally.Share(backends[1]), 0.11, tally.String())
	assert.Positive(t, tally[backends[0]], "the lighter locality still answers")

	clients := getClients(t, p.admin, "/debug/clients")
	require.Len(t, clients, 1)
	assert.Equal(t, "greeter-client-1", clients[0].NodeID)
	assert.Equal(t, "default", clients[0].Scope, "no scope greeter-clients: the default one")
	p.stop(t)
}
