package source

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
)

// checkedEntries reads and checks dir as apply does, and returns its entries.
func checkedEntries(t *testing.T, dir string) []applyEntry {
	t.Helper()
	cfg, _, err := checkDir(dir, DirOptions{})
	require.NoError(t, err)
	want, err := applyEntries(cfg)
	require.NoError(t, err)
	return want
}

func TestApplyEntriesKeysAndValues(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", cluster("web", "1s"))
	writeFile(t, dir, "edge/c.yaml", cluster("xdstp://auth/envoy.config.cluster.v3.Cluster/a/b", "2s"))
	writeFile(t, dir, "edge/lb.yaml", `"@type": type.googleapis.com/envoy.service.discovery.v3.Resource
name: xdstp://auth/envoy.config.endpoint.v3.LbEndpoint/pool/ep1
resource:
  "@type": type.googleapis.com/envoy.config.endpoint.v3.LbEndpoint
  endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}
`)
	want := checkedEntries(t, dir)
	var keys []string
	for _, e := range want {
		keys = append(keys, e.key)
	}
	// The layout: <scope>/<message full name>/<name>, the name holding slashes.
	assert.Equal(t, []string{
		"default/envoy.config.cluster.v3.Cluster/web",
		"edge/envoy.config.cluster.v3.Cluster/xdstp://auth/envoy.config.cluster.v3.Cluster/a/b",
		"edge/envoy.config.endpoint.v3.LbEndpoint/xdstp://auth/envoy.config.endpoint.v3.LbEndpoint/pool/ep1",
	}, keys)

	// Each value is a config file of one resource: the source reads it back
	// to the same resource (same type, name and encoding), the LbEndpoint by
	// its wrapper's name.
	for _, e := range want {
		assert.True(t, strings.HasPrefix(string(e.value), `{"@type":"type.googleapis.com/`), "%s", e.value)
		assert.NotContains(t, string(e.value), "\n")
		assert.True(t, e.sameContent(e.value))
		parsed, err := resources.Parse(e.key+".json", e.value)
		require.NoError(t, err, "%s", e.value)
		require.Len(t, parsed, 1)
		rs := parsed[0]
		assert.Equal(t, e.name, rs.Name)
		assert.Equal(t, e.typeURL, rs.TypeURL)
		assert.Equal(t, e.body, rs.Encoded())
	}
	assert.Equal(t, protocol.TypeLbEndpoint, want[2].typeURL)
	assert.Contains(t, string(want[2].value), `"name":"xdstp://auth/envoy.config.endpoint.v3.LbEndpoint/pool/ep1"`)

	// Encoding is stable: the same directory gives the same bytes.
	again := checkedEntries(t, dir)
	for i := range want {
		assert.Equal(t, want[i].value, again[i].value)
	}
}

func TestApplyDiffComparesContent(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(4, "1s"))
	want := checkedEntries(t, dir)
	held := map[string][]byte{}
	for _, e := range want {
		held[e.key] = e.value
	}
	d := diffApply(want, held)
	assert.True(t, d.empty(), "the same content: nothing to write")
	assert.Equal(t, 4, d.unchanged)

	// The same resource written differently (by hand, spaced, fields in
	// another order) is unchanged; another timeout is a change; a value that
	// does not decode is a change; a key the directory lacks is deleted; one
	// etcd lacks is added.
	k := func(i int) string { return want[i].key }
	held[k(0)] = []byte(`{ "name": "c0", "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  "type": "STATIC", "connect_timeout": "1s",
  "load_assignment": {"cluster_name": "c0", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}}`)
	held[k(1)] = []byte(strings.Replace(string(want[1].value), `"1s"`, `"3s"`, 1))
	held[k(2)] = []byte(`not json`)
	delete(held, k(3))
	held["default/envoy.config.cluster.v3.Cluster/gone"] = want[0].value
	d = diffApply(want, held)
	assert.Equal(t, []string{k(3)}, d.added)
	assert.Equal(t, []string{k(1), k(2)}, d.changed)
	assert.Equal(t, []string{"default/envoy.config.cluster.v3.Cluster/gone"}, d.deleted)
	assert.Equal(t, 1, d.unchanged)
	assert.Equal(t, "1 added, 2 changed, 1 deleted, 1 unchanged", d.summary())

	ops := inPlaceOps(want, d)
	require.Len(t, ops, 4)
	assert.Equal(t, applyOp{key: k(1), value: want[1].value}, ops[0])
	assert.Equal(t, applyOp{key: "default/envoy.config.cluster.v3.Cluster/gone", del: true}, ops[3])
}

func TestApplyBatchesStayWithinLimits(t *testing.T) {
	var ops []applyOp
	for i := range 1000 {
		ops = append(ops, applyOp{key: fmt.Sprintf("s/t/r%04d", i), value: make([]byte, 100+i%300)})
	}
	const gp = "/p/gen/2/"
	for _, lim := range []txnLimits{{128, DefaultMaxTxnBytes}, {16, DefaultMaxTxnBytes}, {128, 20 * 1024}, {4, 9 * 1024}} {
		bs, err := lim.batches(gp, ops)
		require.NoError(t, err)
		n := 0
		for _, b := range bs {
			require.NotEmpty(t, b)
			assert.True(t, lim.fitsOne(gp, b), "a batch of %d ops fits %+v", len(b), lim)
			n += len(b)
		}
		assert.Equal(t, len(ops), n, "every op in order, once")
		assert.Equal(t, ops[len(ops)-1], bs[len(bs)-1][len(bs[len(bs)-1])-1])
		assert.False(t, lim.fitsOne(gp, ops), "all of them do not fit %+v", lim)
	}
	bs, err := txnLimits{16, DefaultMaxTxnBytes}.batches(gp, ops)
	require.NoError(t, err)
	assert.Len(t, bs, (1000+12)/13, "16 ops a txn, 3 kept for bookkeeping")

	_, err = txnLimits{128, 9 * 1024}.batches(gp, []applyOp{{key: "big", value: make([]byte, 2048)}})
	require.Error(t, err, "a resource larger than a txn is refused")
	assert.Contains(t, err.Error(), "--max-txn-bytes")
	_, err = txnLimits{3, DefaultMaxTxnBytes}.batches(gp, ops)
	require.Error(t, err, "no room left for a resource")
}
