package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

func filled(b *testing.B, n int) *store.Store {
	st := store.New()
	changes := make([]store.Change, 0, n)
	for i := range n {
		changes = append(changes, store.Set(scope, xdstest.Cluster(fmt.Sprintf("cluster-%06d", i))))
	}
	if _, err := st.Commit(changes...); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkCommitOne commits one changed resource into tables of growing size: the
// cost must follow the changed resource and its leaf, not the table (O(shard)).
func BenchmarkCommitOne(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			st := filled(b, n)
			versions := []*store.Change{}
			for i := range 2 {
				c := store.Set(scope, xdstest.Cluster("cluster-000042", xdstest.WithConnectTimeout(time.Duration(i+2)*time.Second)))
				versions = append(versions, &c)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := st.Commit(*versions[i%2]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParallelReads reads from every core, with no writer and while a
// writer commits continuously (the allocations reported then are the writer's).
func BenchmarkParallelReads(b *testing.B) {
	for _, writing := range []bool{false, true} {
		b.Run(fmt.Sprintf("writer=%v", writing), func(b *testing.B) { benchReads(b, writing) })
	}
}

func benchReads(b *testing.B, writing bool) {
	st := filled(b, 10_000)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; writing; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = st.Commit(store.Set(scope, xdstest.Cluster(fmt.Sprintf("cluster-%06d", i%10_000), xdstest.WithConnectTimeout(time.Duration(i%7+1)*time.Second))))
		}
	}()
	names := make([]string, 10_000)
	for i := range names {
		names[i] = fmt.Sprintf("cluster-%06d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if st.View().Table(scope, protocol.TypeCluster).Get(names[i%len(names)]) == nil {
				b.Error("missing entry")
			}
			i++
		}
	})
	b.StopTimer()
	close(stop)
	<-done
}

// BenchmarkNotify100k measures a commit until all of 100,000 watchers of the
// changed (scope, type) have been signalled.
func BenchmarkNotify100k(b *testing.B) {
	const n = 100_000
	st := filled(b, 100)
	ws := make([]*store.Watcher, n)
	for i := range ws {
		ws[i] = st.NewWatcher()
		ws[i].Watch(scope, protocol.TypeCluster)
	}
	changes := []store.Change{
		store.Set(scope, xdstest.Cluster("cluster-000001", xdstest.WithConnectTimeout(2*time.Second))),
		store.Set(scope, xdstest.Cluster("cluster-000001", xdstest.WithConnectTimeout(3*time.Second))),
	}
	var commitNs atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if _, err := st.Commit(changes[i%2]); err != nil {
			b.Fatal(err)
		}
		commitNs.Add(int64(time.Since(start)))
		for _, w := range ws {
			<-w.C
		}
	}
	b.ReportMetric(float64(commitNs.Load())/float64(b.N), "commit-ns/op")
}

// BenchmarkCommitHistory commits one changed resource among 10,000 with a
// history of 1 and of 10 revisions: keeping K revisions adds O(K) pointers to a
// commit, and no copy of the content.
func BenchmarkCommitHistory(b *testing.B) {
	for _, keep := range []int{1, 10} {
		b.Run(fmt.Sprintf("keep=%d", keep), func(b *testing.B) {
			st := store.New(store.KeepHistory(keep))
			changes := make([]store.Change, 0, 10_000)
			for i := range 10_000 {
				changes = append(changes, store.Set(scope, xdstest.Cluster(fmt.Sprintf("cluster-%06d", i))))
			}
			if _, err := st.Commit(changes...); err != nil {
				b.Fatal(err)
			}
			versions := []store.Change{}
			for i := range 2 {
				versions = append(versions, store.Set(scope, xdstest.Cluster("cluster-000042", xdstest.WithConnectTimeout(time.Duration(i+2)*time.Second))))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := st.Commit(versions[i%2]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCommitManyScopes commits, in one commit, a new cluster in each of n
// scopes: the history's summaries cost what the commit changed, so ns/op per
// scope stays flat as n grows (it grew with n² when each scope's summary
// walked every changed table).
func BenchmarkCommitManyScopes(b *testing.B) {
	for _, n := range []int{1_000, 4_000} {
		b.Run(fmt.Sprintf("scopes=%d", n), func(b *testing.B) {
			st := store.New()
			for i := 0; b.Loop(); i++ {
				changes := make([]store.Change, 0, n)
				for s := range n {
					changes = append(changes, store.Set(fmt.Sprintf("scope-%05d", s), xdstest.Cluster(fmt.Sprintf("c-%d", i))))
				}
				if _, err := st.Commit(changes...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/scope")
		})
	}
}
