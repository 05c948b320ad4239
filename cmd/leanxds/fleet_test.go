package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/protocol"
)

// openCDS opens an ADS stream on cc as node id, subscribes to every cluster
// and ACKs the answer; the stream stays open until ctx ends.
func openCDS(t *testing.T, ctx context.Context, cc grpc.ClientConnInterface, id string) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Send(&discoveryv3.DiscoveryRequest{Node: node(id, "edge"), TypeUrl: protocol.TypeCluster}))
	resp, err := st.Recv()
	require.NoError(t, err)
	require.NoError(t, st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}))
	return st
}

// fleetJSON runs `leanxds fleet --output json` against a replica's admin
// server.
func fleetJSON(t *testing.T, adminURL string) []admin.FleetPageNode {
	t.Helper()
	var out, errs bytes.Buffer
	code := run(context.Background(), []string{"fleet", "--admin", adminURL, "--output", "json"}, noEnv, &out, &errs)
	require.Equal(t, 0, code, errs.String())
	var nodes []admin.FleetPageNode
	require.NoError(t, json.Unmarshal(out.Bytes(), &nodes), out.String())
	return nodes
}

func noEnv(string) (string, bool) { return "", false }

// Two replicas publish their nodes to etcd; `leanxds fleet` through either
// lists both, with the replica serving each and whether it is current. A
// replica killed with SIGKILL leaves the list when its lease expires; one
// stopped with SIGTERM leaves it at once.
func TestBinaryFleetStatus(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	endpoints := strings.Join(etcdtest.Endpoints(t), ",")
	dir := copyExample(t, "edge")
	serve := func(id string) *proc {
		return startServe(t, t.TempDir(), nil, "--config", dir, "--fleet-etcd", "etcd://"+endpoints+prefix,
			"--replica-id", id, "--fleet-ttl", "2s", "--fleet-interval", "100ms")
	}
	r1, r2 := serve("r1"), serve("r2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	openCDS(t, ctx, dialInsecure(t, r1.xds), "envoy-1")
	openCDS(t, ctx, dialInsecure(t, r2.xds), "envoy-2")

	var nodes []admin.FleetPageNode
	eventually(t, "both nodes current in the fleet", func() bool {
		nodes = fleetJSON(t, r1.admin)
		return len(nodes) == 2 && nodes[0].Current && nodes[1].Current
	}, func() string { j, _ := json.Marshal(nodes); return string(j) })
	require.Equal(t, []string{"r1", "envoy-1", "r2", "envoy-2"}, []string{nodes[0].Replica, nodes[0].Node, nodes[1].Replica, nodes[1].Node})
	require.True(t, nodes[1].Types["CDS"].Current)
	require.Equal(t, nodes[0].Types["CDS"].ACKed, nodes[1].Types["CDS"].ACKed, "the same content, the same versions on every replica")

	var table, errs bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"fleet", "--admin", r2.admin}, noEnv, &table, &errs), errs.String())
	require.Contains(t, table.String(), "2 replicas, 2 nodes (2 listed, 2 of them current)")
	require.Regexp(t, `(?m)^r2\s+envoy-2\s+default\s+yes\s+-\s+-$`, table.String())

	// The publisher's metrics.
	require.Equal(t, 1.0, metric(t, r1.admin, "leanxds_fleet_nodes"))
	require.GreaterOrEqual(t, metric(t, r1.admin, `leanxds_fleet_keys_written_total{op="put"}`), 1.0)
	require.Equal(t, 0.0, metric(t, r1.admin, "leanxds_fleet_changes_pending"))

	// SIGKILL: nothing revokes the lease; the nodes go when it expires.
	killed := time.Now()
	require.NoError(t, r2.cmd.Process.Kill())
	<-r2.exited
	eventually(t, "the killed replica's node gone", func() bool {
		nodes = fleetJSON(t, r1.admin)
		return len(nodes) == 1
	})
	t.Logf("a killed replica's nodes left the fleet status %s after it died (--fleet-ttl 2s)", time.Since(killed).Round(10*time.Millisecond))
	require.Equal(t, "envoy-1", nodes[0].Node)
	require.GreaterOrEqual(t, time.Since(killed), time.Second, "listed until its lease expired")

	// SIGTERM: the replica revokes its lease as it stops.
	r1.stop(t)
	resp, err := cli.Get(context.Background(), prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(t, err)
	require.Zero(t, resp.Count, "a replica that stops takes its keys with it")
}

// --max-connection-age closes a client's connection after that age: the
// server sends GOAWAY, the client's stream ends after the grace period, and
// the client reconnects, on a new connection, to be served again.
func TestMaxConnectionAge(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) {
		o.maxConnectionAge, o.maxConnectionAgeGrace = 300*time.Millisecond, 300*time.Millisecond
	})

	// On the wire: an HTTP/2 connection is sent GOAWAY once it is old.
	conn, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte(http2.ClientPreface))
	require.NoError(t, err)
	fr := http2.NewFramer(conn, conn)
	require.NoError(t, fr.WriteSettings())
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	opened := time.Now()
	for {
		f, err := fr.ReadFrame()
		require.NoError(t, err, "no GOAWAY")
		if _, ok := f.(*http2.GoAwayFrame); ok {
			break
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			require.NoError(t, fr.WriteSettingsAck())
		}
	}
	require.GreaterOrEqual(t, time.Since(opened), 270*time.Millisecond, "GOAWAY at the age, less its 10% jitter")

	// A gRPC client: its stream ends, and it is served again on a new connection.
	var dials atomic.Int32
	cc, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := openCDS(t, ctx, cc, "envoy-1")
	_, err = st.Recv() // nothing more to send: the stream ends with its connection
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.EqualValues(t, 1, dials.Load())
	openCDS(t, ctx, cc, "envoy-1")
	require.EqualValues(t, 2, dials.Load(), "served again on a new connection")
}

// Bad fleet and connection-age flags exit 2 with a message saying what is
// wrong.
func TestFleetUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--config", "x", "--fleet-etcd", "http://127.0.0.1:2379"}, "--fleet-etcd"},
		{[]string{"serve", "--config", "x", "--fleet-etcd", "etcd://127.0.0.1:2379", "--replica-id", "a/b"}, `--replica-id "a/b"`},
		{[]string{"serve", "--config", "x", "--fleet-etcd", "etcd://127.0.0.1:2379", "--fleet-ttl", "1s", "--fleet-interval", "1s"}, "at least twice --fleet-interval"},
		{[]string{"serve", "--config", "x", "--fleet-etcd", "etcd://127.0.0.1:2379", "--fleet-max-writes", "0"}, "must be positive"},
		{[]string{"serve", "--config", "x", "--max-connection-age-grace", "1s"}, "--max-connection-age-grace needs --max-connection-age"},
		{[]string{"serve", "--config", "x", "--max-connection-age", "-1s"}, "must not be negative"},
		{[]string{"serve", "--config", "x", "--fleet-etcd", "etcd://127.0.0.1:2379", "--no-fleet"}, "--no-fleet and --fleet-etcd are exclusive"},
		{[]string{"serve", "--source", "etcd://127.0.0.1:2379", "--replica-id", ""}, `--replica-id ""`},
		{[]string{"fleet", "--output", "csv"}, `--output "csv"`},
		{[]string{"fleet", "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		code, _, stderr := runArgs(t, nil, c.args...)
		require.Equal(t, 2, code, c.args)
		require.Contains(t, stderr, c.want, c.args)
	}
}

// leanxds fleet against a server without fleet status says so.
func TestFleetWithoutFleetStatus(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	code, _, stderr := runArgs(t, nil, "fleet", "--admin", ts.admin.URL)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "has no fleet status: it serves without --source etcd:// or --fleet-etcd")
}

// serve --source etcd:// publishes fleet status under the source's prefix,
// with the source's client, unless --no-fleet.
func TestBinaryFleetStatusWithEtcdSource(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	src := "etcd://" + strings.Join(etcdtest.Endpoints(t), ",") + prefix
	r := startServe(t, t.TempDir(), nil, "--source", src, "--replica-id", "r1", "--fleet-interval", "100ms")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	openCDS(t, ctx, dialInsecure(t, r.xds), "envoy-1")
	var nodes []admin.FleetPageNode
	eventually(t, "the node in the fleet", func() bool {
		nodes = fleetJSON(t, r.admin)
		return len(nodes) == 1 && nodes[0].Current
	})
	require.Equal(t, "r1", nodes[0].Replica)
	resp, err := cli.Get(context.Background(), prefix+"/nodes/r1/envoy-1")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)

	off := startServe(t, t.TempDir(), nil, "--source", src, "--no-fleet")
	code, _ := get(t, off.admin, "/debug/fleet")
	require.Equal(t, 404, code)
}
