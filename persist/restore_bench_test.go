package persist_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/store"
)

// BenchmarkRestoreOne restores, into a store of n resources, a snapshot whose
// content differs from the store's in one resource: the restore path's cost for
// what it changes. Each iteration alternates between two such snapshots, so each
// restore changes exactly one resource.
func BenchmarkRestoreOne(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			var snaps [2]persist.Backend
			for v := range snaps {
				changes := make([]store.Change, 0, n)
				for i := range n {
					name := fmt.Sprintf("cluster-%06d", i)
					c := xdstest.Cluster(name)
					if i == 42 {
						c = xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(v+2)*time.Second))
					}
					changes = append(changes, store.Set("fleet", c))
				}
				data, _ := persist.Encode(storeWith(b, changes...).View(), persist.Meta{Writer: "bench"})
				snaps[v] = fixedSnapshot(data)
			}
			st := store.New()
			ctx := context.Background()
			if _, err := persist.Restore(ctx, snaps[1], st); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				info, err := persist.Restore(ctx, snaps[i%2], st)
				if err != nil || !info.Restored || info.Mismatched != 0 {
					b.Fatalf("restore: %v, %+v", err, info)
				}
			}
		})
	}
}

// fixedSnapshot is a backend that always reads the same snapshot.
type fixedSnapshot []byte

func (f fixedSnapshot) Read(context.Context) ([]byte, error) { return f, nil }
func (f fixedSnapshot) Write(context.Context, []byte) error  { return nil }
func (f fixedSnapshot) SetAside(context.Context, string) (string, error) {
	return "", fmt.Errorf("a fixed snapshot is not set aside")
}
func (f fixedSnapshot) String() string { return "fixed://snapshot" }

// BenchmarkRestoreHistory restores, into a new store, a snapshot of 10,000
// resources with a history of 1 and of 10 revisions, each changing one
// resource: replaying the history costs what its revisions changed.
func BenchmarkRestoreHistory(b *testing.B) {
	for _, keep := range []int{1, 10} {
		b.Run(fmt.Sprintf("keep=%d", keep), func(b *testing.B) {
			st := store.New(store.KeepHistory(keep))
			for v := range 10 {
				changes := make([]store.Change, 0, 10_001)
				changes = append(changes, store.ReplaceScope("fleet"))
				for i := range 10_000 {
					name := fmt.Sprintf("cluster-%06d", i)
					c := xdstest.Cluster(name)
					if i == 42 {
						c = xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(v+2)*time.Second))
					}
					changes = append(changes, store.Set("fleet", c))
				}
				commit(b, st, changes...)
			}
			data, _ := persist.Encode(st.View(), persist.Meta{Writer: "bench", Revision: st.View().Revision()})
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				info, err := persist.Restore(ctx, fixedSnapshot(data), store.New(store.KeepHistory(keep)))
				if err != nil || !info.Numbered || info.Revisions != keep {
					b.Fatalf("restore: %v, %+v", err, info)
				}
			}
			b.ReportMetric(float64(len(data)), "snapshot-bytes")
		})
	}
}
