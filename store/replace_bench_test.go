package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// BenchmarkReplaceScopeOne commits a whole scope, as a config source that always
// has the full picture does (ReplaceScope and a Set of every resource), where one
// resource of n differs from what the store holds: the reload of a config
// directory where one file changed. Each iteration alternates between two such
// commits, so each changes exactly one resource.
func BenchmarkReplaceScopeOne(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			st := filled(b, n)
			commits := [2][]store.Change{}
			for v := range commits {
				changes := make([]store.Change, 0, n+1)
				changes = append(changes, store.ReplaceScope(scope))
				for i := range n {
					name := fmt.Sprintf("cluster-%06d", i)
					if i == 42 {
						changes = append(changes, store.Set(scope, xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(v+2)*time.Second))))
						continue
					}
					changes = append(changes, store.Set(scope, xdstest.Cluster(name)))
				}
				commits[v] = changes
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				res, err := st.Commit(commits[i%2]...)
				if err != nil {
					b.Fatal(err)
				}
				if res.Set != 1 || res.Deleted != 0 {
					b.Fatalf("commit %d: %+v, want one resource set", i, res)
				}
			}
		})
	}
}

// BenchmarkReplaceScopeOneLoaded is BenchmarkReplaceScopeOne with resources as
// a config source loads them (resources.Parse, here resources.Check): validated
// and encoded once, when they were read, so the store compares their encoding
// with what it holds and encodes nothing but the changed resource.
func BenchmarkReplaceScopeOneLoaded(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			st := filled(b, n)
			commits := [2][]store.Change{}
			for v := range commits {
				changes := make([]store.Change, 0, n+1)
				changes = append(changes, store.ReplaceScope(scope))
				for i := range n {
					name := fmt.Sprintf("cluster-%06d", i)
					c := xdstest.Cluster(name)
					if i == 42 {
						c = xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(v+2)*time.Second))
					}
					r, err := resources.Check(protocol.TypeCluster, "", c)
					if err != nil {
						b.Fatal(err)
					}
					changes = append(changes, store.SetResource(scope, r))
				}
				commits[v] = changes
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				res, err := st.Commit(commits[i%2]...)
				if err != nil {
					b.Fatal(err)
				}
				if res.Set != 1 || res.Deleted != 0 {
					b.Fatalf("commit %d: %+v, want one resource set", i, res)
				}
			}
		})
	}
}

// BenchmarkDangling finds the dangling references of a scope of n resources
// (clusters with their endpoints, listeners and routes, none dangling): the
// check a config source makes of what a whole-scope commit would publish. It
// reads the references kept in the entries; its cost is O(resources of scope).
func BenchmarkDangling(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			w := xdstest.Workload{Clusters: n * 45 / 100, EndpointsPerCluster: 1, Listeners: n / 20, Routes: n / 20, VirtualHostsPerRoute: 2}
			st := store.New()
			var changes []store.Change
			for _, ms := range w.Resources() {
				for _, m := range ms {
					changes = append(changes, store.Set(scope, m))
				}
			}
			if _, err := st.Commit(changes...); err != nil {
				b.Fatal(err)
			}
			v := st.View()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if d := v.Dangling(scope); len(d) > 0 {
					b.Fatalf("dangling: %v", d[0])
				}
			}
		})
	}
}
