package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/source"
)

// putExample writes examples/NAME into generation gen of prefix, scope
// "default", one key per resource, and makes gen current, in one txn.
func putExample(t *testing.T, cli *clientv3.Client, prefix, gen, name string) {
	t.Helper()
	dir := filepath.Join("..", "..", "examples", name)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	ops := []clientv3.Op{clientv3.OpPut(source.EtcdCurrentKey(prefix), gen)}
	for _, e := range entries {
		rs, err := resources.Load(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // a client bootstrap
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

// The binary serves what etcd holds (--source etcd://), applies a change
// written to etcd, refuses an invalid value while serving the rest, and
// saves a snapshot; started again while etcd does not answer, it serves that
// snapshot, the same versions, and says on /readyz and in /metrics that etcd
// is unreachable.
func TestBinaryServeEtcd(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	putExample(t, cli, prefix, "1", "edge")
	addr := "etcd://" + strings.Join(etcdtest.Endpoints(t), ",") + prefix
	snapshot := filepath.Join(t.TempDir(), "snapshot")

	p := startServe(t, t.TempDir(), nil, "--source", addr, "--snapshot", snapshot, "--drain-timeout", "5s")
	loaded := p.logLine("config loaded")
	require.NotNil(t, loaded, p.logText())
	assert.Equal(t, 11.0, loaded["resources"])
	assert.Equal(t, "1", loaded["generation"])

	cc := dialInsecure(t, p.xds)
	c := conv.ADS(t, cc, node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	cds := c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))
	c.ACK()
	eds := c.Request(protocol.TypeEndpoint, "api", "payments", "web").ExpectResponse(conv.Names("api", "payments", "web"))
	c.ACK()
	require.Equal(t, uint32(8081), portOf(eds.Resource("web")))

	// A change written to etcd arrives.
	key := source.EtcdResourceKey(prefix, "1", source.DefaultScope, protocol.TypeEndpoint, "web")
	got, err := cli.Get(context.Background(), key)
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	_, err = cli.Put(context.Background(), key, strings.Replace(string(got.Kvs[0].Value), "8081", "9081", 1))
	require.NoError(t, err)
	edited := c.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names("web"))
	assert.Equal(t, uint32(9081), portOf(edited.Resource("web")))
	c.ACK()

	// An invalid value: refused, counted, shown; the rest of the txn applies.
	bad := source.EtcdResourceKey(prefix, "1", source.DefaultScope, protocol.TypeCluster, "broken")
	_, err = cli.Txn(context.Background()).Then(
		clientv3.OpPut(bad, `{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "broken", "connect_timeout": "-1s"}`),
		clientv3.OpPut(key, string(got.Kvs[0].Value)),
	).Commit()
	require.NoError(t, err)
	back := c.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names("web"))
	assert.Equal(t, uint32(8081), portOf(back.Resource("web")))
	c.ACK()
	eventually(t, "the refused value in /metrics", func() bool {
		return metric(t, p.admin, `leanxds_config_reloads_total{result="rejected"}`) == 1
	})
	_, page := get(t, p.admin, "/")
	assert.Contains(t, page, "REFUSED   1 keys")
	assert.Contains(t, page, bad+": connect_timeout: value must be greater than 0s")
	assert.Equal(t, 0.0, metric(t, p.admin, "leanxds_config_source_stale"))
	p.stop(t) // writes the snapshot

	// etcd does not answer (no one listens there): the snapshot is served.
	down := "etcd://127.0.0.1:1" + prefix
	p2 := startServe(t, t.TempDir(), nil, "--source", down, "--snapshot", snapshot, "--etcd-load-timeout", "500ms")
	require.NotNil(t, p2.logLine("serving the restored snapshot: etcd does not answer; its content is applied once it does"), p2.logText())
	code, ready := get(t, p2.admin, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, ready, "serving the restored snapshot; etcd is not read yet")
	eventually(t, "etcd unreachable on /readyz", func() bool {
		_, ready := get(t, p2.admin, "/readyz")
		return strings.Contains(ready, "etcd unreachable")
	})
	assert.Equal(t, 1.0, metric(t, p2.admin, "leanxds_config_source_stale"))
	c2 := conv.ADS(t, dialInsecure(t, p2.xds), node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	again := c2.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))
	assert.Equal(t, cds.Version(), again.Version(), "the same content, the same version")
	p2.stop(t)

	// Without a snapshot, a start while etcd does not answer fails, saying why.
	err = runServeCmd(t, "--source", down, "--etcd-load-timeout", "300ms", "--listen", "127.0.0.1:0", "--admin", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nothing to serve: etcd "+down+" did not answer within 300ms")
}

// runServeCmd runs `leanxds serve args` in the test process, without the
// environment.
func runServeCmd(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	return runServe(ctx, args, func(string) (string, bool) { return "", false }, &b, &b)
}

func TestServeSourceFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--config", "d", "--source", "etcd://h:1/p"}, "--config and --source are exclusive"},
		{[]string{"--source", "http://h/p"}, "--source: etcd address"},
		{[]string{"--config", "d", "--etcd-ca", "ca.pem"}, "need --source etcd://"},
		{[]string{"--source", "etcd://h/p", "--etcd-cert", "c.pem"}, "--etcd-cert and --etcd-key go together"},
		{[]string{}, "--config DIR is required (or --source etcd://...)"},
	} {
		err := runServeCmd(t, tc.args...)
		require.Error(t, err, tc.args)
		assert.Contains(t, err.Error(), tc.err, tc.args)
	}
}
