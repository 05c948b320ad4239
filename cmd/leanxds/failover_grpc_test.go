package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	gresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/source"
)

// putDir writes the resources of the config files of dir into generation gen
// of prefix, scope "default", and makes gen current, in one txn.
func putDir(t *testing.T, cli *clientv3.Client, prefix, gen, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	ops := []clientv3.Op{clientv3.OpPut(source.EtcdCurrentKey(prefix), gen)}
	for _, e := range entries {
		rs, err := resources.Load(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // a client bootstrap, a directory
		}
		for _, r := range rs {
			a, err := anypb.New(r.Message)
			require.NoError(t, err)
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(a)
			require.NoError(t, err)
			ops = append(ops, clientv3.OpPut(source.EtcdResourceKey(prefix, gen, source.DefaultScope, r.TypeURL, r.Name), string(b)))
		}
	}
	_, err = cli.Txn(context.Background()).Then(ops...).Commit()
	require.NoError(t, err)
}

// A grpc-go xDS client (the grpc example's bootstrap, its server_uri naming
// two replicas) keeps making RPCs while the replica serving its
// xDS stream is killed with SIGKILL: it keeps what it was sent, re-dials, and
// its stream moves to the other replica. Every RPC succeeds.
func TestBinaryGRPCClientThroughFailover(t *testing.T) {
	var backends [2]string
	for i := range backends {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		g := grpc.NewServer()
		healthpb.RegisterHealthServer(g, health.NewServer())
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
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	putDir(t, cli, prefix, "1", dir)
	addr := "etcd://" + strings.Join(etcdtest.Endpoints(t), ",") + prefix
	a := startServe(t, t.TempDir(), nil, "--source", addr)
	b := startServe(t, t.TempDir(), nil, "--source", addr)

	raw, err := os.ReadFile(filepath.Join(dir, "bootstrap.json"))
	require.NoError(t, err)
	var bootstrap map[string]any
	require.NoError(t, json.Unmarshal(raw, &bootstrap))
	// Several addresses behind one target (as a DNS name with several records
	// gives them): pick_first dials the next when one dies.
	scheme := "leanxds-replicas-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	rb := manual.NewBuilderWithScheme(scheme)
	rb.InitialState(gresolver.State{Addresses: []gresolver.Address{{Addr: a.xds}, {Addr: b.xds}}})
	gresolver.Register(rb)
	bootstrap["xds_servers"].([]any)[0].(map[string]any)["server_uri"] = scheme + ":///xds"
	raw, err = json.Marshal(bootstrap)
	require.NoError(t, err)
	resolver, err := xds.NewXDSResolverWithConfigForTesting(raw)
	require.NoError(t, err)
	cc, err := grpc.NewClient("xds:///greeter", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	hc := healthpb.NewHealthClient(cc)

	// The first RPC waits for the channel's xDS configuration.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	cancel()
	require.NoError(t, err)
	require.Len(t, getClients(t, a.admin, "/debug/clients"), 1, "the xDS stream is on the first address")

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}) // fail fast: no WaitForReady
			cancel()
			if err != nil {
				failed.Add(1)
				t.Logf("RPC failed: %v", err)
			} else {
				ok.Add(1)
			}
		}
	}()
	eventually(t, "RPCs before the kill", func() bool { return ok.Load() >= 50 })
	require.NoError(t, a.cmd.Process.Kill())
	<-a.exited
	before := ok.Load()
	eventually(t, "the xDS stream on the other replica", func() bool {
		for _, c := range getClients(t, b.admin, "/debug/clients") {
			if c.NodeID == "greeter-client-1" {
				return true
			}
		}
		return false
	})
	eventually(t, "RPCs after the move", func() bool { return ok.Load() >= before+50 })
	close(stop)
	<-done
	t.Logf("%d RPCs through the failover, %d failed", ok.Load(), failed.Load())
	assert.Zero(t, failed.Load(), "no RPC failed")
}
