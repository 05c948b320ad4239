package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/stream"
)

// The program stages each change of its directory: a good one reaches the
// 10% node, then every node; one the 10% node NACKs is rolled back, and the
// other nodes never see it: the next thing they are sent is the change after
// it.
func TestRunStagesChanges(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"clusters.yaml", "endpoints.yaml", "listeners.yaml", "routes.yaml", "secrets.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "edge", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	up := make(chan net.Addr, 1)
	reload := make(chan struct{})
	staged := make(chan rollout.Status, 1)
	done := make(chan error, 1)
	cfg := config{dir: dir, xdsAddr: "127.0.0.1:0", stages: "10%,100%", window: 30 * time.Second}
	go func() {
		done <- run(ctx, cfg, reload, func(x net.Addr) { up <- x }, func(s rollout.Status) { staged <- s })
	}()
	var addr net.Addr
	select {
	case addr = <-up:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	}
	cc, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()

	// One node in the 10%, two outside it.
	var canary string
	var others []string
	for i := 0; canary == "" || len(others) < 2; i++ {
		id := fmt.Sprintf("envoy-%d", i)
		if stream.Bucket(id) < 1000 {
			if canary == "" {
				canary = id
			}
		} else if len(others) < 2 {
			others = append(others, id)
		}
	}
	clients := map[string]*conv.SotW{}
	for _, id := range append([]string{canary}, others...) {
		c := conv.ADS(t, cc, &corev3.Node{Id: id})
		c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))
		c.ACK()
		clients[id] = c
	}

	stageFile := func(body string) {
		t.Helper()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "extra.yaml"), []byte(body), 0o644))
		reload <- struct{}{}
	}
	extra := func(timeout string) string {
		return `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: extra
type: STATIC
connect_timeout: ` + timeout + "\n"
	}

	// A good change: the canary first, then every node.
	stageFile(extra("1s"))
	good := clients[canary].ExpectResponse(conv.Names("api", "payments", "web", "extra"))
	clients[canary].ACK()
	for _, id := range others {
		clients[id].ExpectResponse(conv.Version(good.Version()))
		clients[id].ACK()
	}
	st := <-staged
	assert.Equal(t, rollout.Promoted, st.Phase)

	// A change the canary rejects: rolled back, the canary gets the good
	// version again.
	stageFile(extra("2s"))
	bad := clients[canary].ExpectResponse(conv.VersionNot(good.Version()))
	clients[canary].NACK("the canary rejects this")
	st = <-staged
	assert.Equal(t, rollout.RolledBack, st.Phase)
	assert.Contains(t, st.Events[len(st.Events)-1].Message, "the canary rejects this")
	clients[canary].ExpectResponse(conv.Version(good.Version()))
	clients[canary].ACK()

	// The next change: what the others are sent next is it, not the bad one.
	stageFile(extra("3s"))
	next := clients[canary].ExpectResponse(conv.VersionNot(good.Version()))
	require.NotEqual(t, bad.Version(), next.Version())
	clients[canary].ACK()
	for _, id := range others {
		clients[id].ExpectResponse(conv.Version(next.Version()))
		clients[id].ACK()
	}
	assert.Equal(t, rollout.Promoted, (<-staged).Phase)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
