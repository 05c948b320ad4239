package source

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/protocol"
)

// BenchmarkEtcdList lists and commits 10,000 clusters from etcd (the start of
// a replica, or the re-list after a compaction): ns/op is one whole list.
func BenchmarkEtcdList(b *testing.B) {
	cli := etcdtest.Client(b)
	p := etcdtest.Prefix(b, cli)
	const n = 10_000
	ops := []clientv3.Op{clientv3.OpPut(EtcdCurrentKey(p), "1")}
	for i := range n {
		name := fmt.Sprintf("c%05d", i)
		ops = append(ops, clientv3.OpPut(clusterKey(p, "1", "edge", name), clusterValue(name, "1s")))
		if len(ops) == 128 || i == n-1 {
			txn(b, cli, ops...)
			ops = ops[:0]
		}
	}
	b.ResetTimer()
	for b.Loop() {
		e, st, _ := newEtcdSource(b, cli, p)
		e.page = DefaultEtcdListPage
		_, err := e.Load(context.Background())
		require.NoError(b, err)
		require.Equal(b, n, st.View().Table("edge", protocol.TypeCluster).Len())
	}
	b.ReportMetric(float64(n), "resources/op")
}

// BenchmarkEtcdPutToCommit is the time from a put acknowledged by etcd to its
// commit in the store of a source watching it: ns/op is one change.
func BenchmarkEtcdPutToCommit(b *testing.B) {
	cli := etcdtest.Client(b)
	p := etcdtest.Prefix(b, cli)
	put(b, cli, EtcdCurrentKey(p), "1")
	e, st, _ := newEtcdSource(b, cli, p)
	runEtcd(b, e)
	i := 0
	var worst time.Duration
	b.ResetTimer()
	for b.Loop() {
		i++
		timeout := fmt.Sprintf("%ds", i)
		start := time.Now()
		put(b, cli, clusterKey(p, "1", "edge", "c"), clusterValue("c", timeout))
		acked := time.Now()
		want := versionFor(b, "c", timeout)
		for versionOf(st, "edge", "c") != want {
			time.Sleep(50 * time.Microsecond)
		}
		_ = start
		worst = max(worst, time.Since(acked))
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-us-after-ack")
}

// BenchmarkEtcdListAgain lists 10,000 clusters again into a store that holds
// them (after a compaction, or a reconnection): unchanged keys are not parsed.
func BenchmarkEtcdListAgain(b *testing.B) {
	cli := etcdtest.Client(b)
	p := etcdtest.Prefix(b, cli)
	const n = 10_000
	ops := []clientv3.Op{clientv3.OpPut(EtcdCurrentKey(p), "1")}
	for i := range n {
		name := fmt.Sprintf("c%05d", i)
		ops = append(ops, clientv3.OpPut(clusterKey(p, "1", "edge", name), clusterValue(name, "1s")))
		if len(ops) == 128 || i == n-1 {
			txn(b, cli, ops...)
			ops = ops[:0]
		}
	}
	e, st, _ := newEtcdSource(b, cli, p)
	e.page = DefaultEtcdListPage
	_, err := e.Load(context.Background())
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		res, err := e.relist(context.Background())
		require.NoError(b, err)
		require.False(b, res.Changed())
	}
	require.Equal(b, n, st.View().Table("edge", protocol.TypeCluster).Len())
}
