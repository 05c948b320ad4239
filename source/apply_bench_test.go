package source

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// writeClusters writes n STATIC clusters into dir, in files of 1000 spread
// over 10 scopes, each cluster's connect timeout being timeout.
func writeClusters(t testing.TB, dir string, n int, timeout string) {
	t.Helper()
	for f := 0; f*1000 < n; f++ {
		writeFile(t, dir, fmt.Sprintf("s%d/c%03d.yaml", f%10, f), clustersFrom(f*1000, min(1000, n-f*1000), timeout))
	}
}

// clustersFrom is a resource file listing n STATIC clusters named c<from>...
func clustersFrom(from, n int, timeout string) string {
	var b []byte
	for i := range n {
		name := fmt.Sprintf("c%d", from+i)
		b = fmt.Appendf(b, "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: %s\n  type: STATIC\n  connect_timeout: %s\n"+
			"  load_assignment:\n    cluster_name: %s\n    endpoints:\n    - lb_endpoints:\n      - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}\n",
			name, timeout, name)
	}
	return string(b)
}

// BenchmarkApplyEtcd100k applies a directory of 100,000 clusters to an empty
// prefix (a new generation, in txns of etcd's default limits), then the same
// directory again (nothing written), then one with one cluster changed (in
// place), reporting the time of each, and that of CheckDir (validate) of the
// same directory. It takes minutes: run it alone (-run XXX -bench ApplyEtcd100k
// -benchtime 1x).
func BenchmarkApplyEtcd100k(b *testing.B) {
	cli, prefix := applyEtcd(b)
	dir := b.TempDir()
	const n = 100_000
	writeClusters(b, dir, n, "1s")
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		_, err := cli.Delete(ctx, prefix+"/", clientv3.WithPrefix())
		require.NoError(b, err)
		writeFile(b, dir, "s0/c000.yaml", clustersFrom(0, 1000, "1s"))
		// What leanxds validate costs of the same directory: most of each apply.
		start := time.Now()
		_, _, err = CheckDir(dir, DirOptions{})
		require.NoError(b, err)
		b.ReportMetric(time.Since(start).Seconds(), "s/validate")
		b.StartTimer()

		start = time.Now()
		res, err := ApplyEtcd(ctx, cli, prefix, dir, ApplyOptions{})
		require.NoError(b, err)
		require.Equal(b, ApplyNewGeneration, res.Mode)
		require.Len(b, res.Added, n)
		b.ReportMetric(time.Since(start).Seconds(), "s/first-apply")
		b.ReportMetric(float64(res.Txns), "txns/first-apply")

		start = time.Now()
		res, err = ApplyEtcd(ctx, cli, prefix, dir, ApplyOptions{})
		require.NoError(b, err)
		require.Equal(b, ApplyNone, res.Mode)
		b.ReportMetric(time.Since(start).Seconds(), "s/no-op-apply")

		writeFile(b, dir, "s0/c000.yaml", clustersFrom(0, 1, "2s")+clustersFrom(1, 999, "1s"))
		start = time.Now()
		res, err = ApplyEtcd(ctx, cli, prefix, dir, ApplyOptions{})
		require.NoError(b, err)
		require.Equal(b, ApplyInPlace, res.Mode)
		require.Len(b, res.Changed, 1)
		b.ReportMetric(time.Since(start).Seconds(), "s/one-change-apply")
	}
}
