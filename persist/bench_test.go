package persist_test

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/store"
)

// large is the benchmarks' store: 100,000 resources, as 45,000 clusters with
// their endpoints (4 each), 5,000 listeners and 5,000 route configurations of
// 2 virtual hosts.
var large = sync.OnceValue(func() *store.Store {
	w := xdstest.Workload{Clusters: 45_000, EndpointsPerCluster: 4, Listeners: 5_000, Routes: 5_000, VirtualHostsPerRoute: 2}
	st := store.New()
	if _, err := st.Commit(workload(w, "fleet")...); err != nil {
		panic(err)
	}
	return st
})

// Writing 100,000 resources: encode and write with fsync and rename (file), or
// one conditional PUT (s3). Reports the snapshot's size and the heap one write
// needs on top of the store's (peak-extra-heap-MB).
func BenchmarkWrite100k(b *testing.B) {
	st := large()
	b.Run("file", func(b *testing.B) {
		benchWrite(b, st, openFile(b, tempSnapshot(b)))
	})
	b.Run("s3", func(b *testing.B) {
		benchWrite(b, st, benchS3(b))
	})
}

func benchWrite(b *testing.B, st *store.Store, backend persist.Backend) {
	ctx := context.Background()
	if _, err := persist.Restore(ctx, backend, store.New()); err != nil { // learn the ETag, if any
		b.Fatal(err)
	}
	var size int
	write := func() {
		data, _ := persist.Encode(st.View(), persist.Meta{Writer: "bench"})
		if err := backend.Write(ctx, data); err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	for b.Loop() {
		write()
	}
	b.ReportMetric(float64(size)/1e6, "snapshot-MB")
	b.ReportMetric(float64(measurePeak(write))/1e6, "peak-extra-heap-MB")
}

// Restoring 100,000 resources: read, check, decode, validate and commit into an
// empty store, then verify every content version. Reports the heap one restore
// needs at its peak beyond what was live before it (the restored store
// included), and what the restored store keeps.
func BenchmarkRestore100k(b *testing.B) {
	st := large()
	b.Run("file", func(b *testing.B) {
		path := tempSnapshot(b)
		backend := openFile(b, path)
		data, _ := persist.Encode(st.View(), persist.Meta{Writer: "bench"})
		if err := backend.Write(context.Background(), data); err != nil {
			b.Fatal(err)
		}
		benchRestore(b, backend, len(data))
	})
	b.Run("s3", func(b *testing.B) {
		backend := benchS3(b)
		data, _ := persist.Encode(st.View(), persist.Meta{Writer: "bench"})
		if err := backend.Write(context.Background(), data); err != nil {
			b.Fatal(err)
		}
		benchRestore(b, backend, len(data))
	})
}

func benchRestore(b *testing.B, backend persist.Backend, size int) {
	ctx := context.Background()
	var restored *store.Store
	restore := func() {
		restored = store.New()
		info, err := persist.Restore(ctx, backend, restored)
		if err != nil || !info.Restored || info.Mismatched != 0 {
			b.Fatalf("restore: %v, %+v", err, info)
		}
	}
	for b.Loop() {
		restore()
	}
	restored = nil
	peak := measurePeak(restore)
	restored = nil
	runtime.GC()
	before := heapLive()
	restore()
	runtime.GC()
	kept := heapLive() - min(before, heapLive())
	runtime.KeepAlive(restored)
	b.ReportMetric(float64(size)/1e6, "snapshot-MB")
	b.ReportMetric(float64(peak)/1e6, "peak-extra-heap-MB")
	b.ReportMetric(float64(kept)/1e6, "restored-store-heap-MB")
}

// The check the persister makes each interval when the store's revision moved:
// the content digest of 100,000 resources.
func BenchmarkContentDigest100k(b *testing.B) {
	st := large()
	b.ReportAllocs()
	for b.Loop() {
		persist.ContentDigest(st.View())
	}
}

func benchS3(b *testing.B) persist.Backend {
	return newS3Bucket(b).open(b, "bench/snapshot.bin")
}

// measurePeak runs f once, after a collection, and returns the highest heap seen
// while it ran (objects not yet swept included: what the process must have),
// less the live heap before it. The heap is sampled every millisecond.
func measurePeak(f func()) uint64 {
	runtime.GC()
	base := heapLive()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heapLive(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	if h := heapLive(); h > peak.Load() {
		peak.Store(h)
	}
	return peak.Load() - min(base, peak.Load())
}

func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
