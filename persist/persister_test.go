package persist_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// An unchanged store is not written: same revision. A new revision with the
// same content (a change undone) is: the snapshot keeps the history and the
// revision numbering a restarted store continues.
func TestPersistOnlyWhenChanged(t *testing.T) {
	ctx := context.Background()
	obj := newMemObject()
	st := storeWith(t, sample("a")...)
	p := persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet})

	wrote, err := p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote, "nothing committed since")

	commit(t, st, sample("a")...) // the config source recommits the same content
	commit(t, st, store.Set("edge", xdstest.Cluster("tmp")))
	commit(t, st, store.Delete("edge", protocol.TypeCluster, "tmp"))
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote, "a change undone leaves the content as written, not the history")
	assert.Equal(t, 2, obj.writeCount())
	undone, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, st.View().Revision(), undone.Revision)
	require.NotEmpty(t, undone.History)
	assert.Equal(t, st.View().Revision(), undone.History[0].Revisions[0].Revision.Revision)

	commit(t, st, sample("b")...)
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	assert.Equal(t, 3, obj.writeCount())
	snap, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, persist.ContentDigest(st.View()), snap.ContentDigest)
	assert.Equal(t, st.View().Revision(), snap.Revision)

	s := p.Stats()
	assert.Equal(t, uint64(3), s.Writes)
	assert.Equal(t, uint64(1), s.Unchanged)
	assert.Zero(t, s.Failures)
	assert.Equal(t, len(obj.content()), s.LastBytes)
}

// A restored store that the config source leaves as it was is not written back.
func TestPersistAfterRestoreWritesNothingUnchanged(t *testing.T) {
	ctx := context.Background()
	obj := newMemObject()
	_, err := persist.NewPersister(storeWith(t, sample("a")...), obj.client(), persist.Options{Logger: quiet}).Persist(ctx)
	require.NoError(t, err)

	st := store.New()
	p := persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet})
	_, err = p.Restore(ctx)
	require.NoError(t, err)
	commit(t, st, sample("a")...)
	p.ConfigLoaded()
	wrote, err := p.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)
	assert.Equal(t, 1, obj.writeCount())

	// Revisions continue from the restored snapshot's.
	before, err := persist.Decode(obj.content())
	require.NoError(t, err)
	commit(t, st, store.Set("edge", xdstest.Cluster("new")))
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	after, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, before.Revision+1, after.Revision)
}

// Before the first real config has loaded, an empty store is never written over
// an existing snapshot, not even by the last write at shutdown.
func TestPersistNeverWritesEmptyBeforeConfigLoads(t *testing.T) {
	ctx := context.Background()
	path := tempSnapshot(t)
	_, err := persist.NewPersister(storeWith(t, sample("a")...), openFile(t, path), persist.Options{Logger: quiet}).Persist(ctx)
	require.NoError(t, err)
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	// A server whose restore failed (here: it never ran) and whose config source
	// has not loaded anything.
	st := store.New()
	p := persist.NewPersister(st, openFile(t, path), persist.Options{Logger: quiet, Interval: time.Millisecond})
	wrote, err := p.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	time.Sleep(20 * time.Millisecond) // several intervals
	cancel()
	require.NoError(t, <-done)
	now, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, good, now)

	// Once the config source says it loaded, an empty store is its real state.
	p.ConfigLoaded()
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	snap, err := persist.Decode(mustRead(t, path))
	require.NoError(t, err)
	assert.Zero(t, snap.Resources)
}

// Run writes a changed store every interval, and once more when it stops.
func TestRunWritesEveryIntervalAndAtShutdown(t *testing.T) {
	obj := newMemObject()
	st := storeWith(t, sample("a")...)
	p := persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet, Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "the first write", func() bool { return obj.writeCount() == 1 })
	commit(t, st, sample("b")...)
	eventually(t, "the write of the change", func() bool { return obj.writeCount() == 2 })
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 2, obj.writeCount(), "nothing changed before shutdown: nothing more written")

	// A change made just before shutdown, with the next interval far away, is
	// written by the last write.
	p = persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet, Interval: time.Hour})
	_, err := p.Restore(context.Background())
	require.NoError(t, err)
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- p.Run(ctx) }()
	commit(t, st, store.Set("edge", xdstest.Cluster("late")))
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 3, obj.writeCount())
	snap, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, persist.ContentDigest(st.View()), snap.ContentDigest)
}

// A backend that fails is retried with backoff while the store keeps taking
// commits; when it comes back, writes resume with the latest content.
func TestRunRetriesFailingBackend(t *testing.T) {
	obj := newMemObject()
	obj.setDown(true)
	st := storeWith(t, sample("a")...)
	p := persist.NewPersister(st, obj.client(), persist.Options{
		Logger: quiet, Interval: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "several failed writes", func() bool { return p.Stats().Failures >= 3 })

	// Serving goes on: commits land and readers see them.
	res := commit(t, st, store.Set("edge", xdstest.Cluster("during-outage")))
	assert.True(t, res.Changed())
	assert.NotNil(t, st.View().Table("edge", protocol.TypeCluster).Get("during-outage"))
	assert.NotEmpty(t, p.Stats().LastError)
	assert.Zero(t, obj.writeCount())

	obj.setDown(false)
	eventually(t, "writes to resume", func() bool { return obj.writeCount() == 1 })
	cancel()
	require.NoError(t, <-done)
	snap, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, persist.ContentDigest(st.View()), snap.ContentDigest)
	assert.Empty(t, p.Stats().LastError)
}

// The last write at shutdown reports its failure.
func TestRunReportsFailedLastWrite(t *testing.T) {
	obj := newMemObject()
	obj.setDown(true)
	p := persist.NewPersister(storeWith(t, sample("a")...), obj.client(), persist.Options{Logger: quiet, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Run(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "last snapshot before shutdown")
}

// Two writers of one location with conditional writes: neither silently
// overwrites the other. The decision goes by revision, content and checks.
func TestPersistConflicts(t *testing.T) {
	ctx := context.Background()
	obj := newMemObject()
	writer := func(p *persist.Persister, want string) *persist.Snapshot {
		t.Helper()
		snap, err := persist.Decode(obj.content())
		require.NoError(t, err)
		assert.Equal(t, want, snap.Writer)
		return snap
	}

	// Two replicas start and find no snapshot.
	a := store.New()
	pa := persist.NewPersister(a, obj.client(), persist.Options{Logger: quiet, Writer: "a"})
	_, err := pa.Restore(ctx)
	require.NoError(t, err)
	b := store.New()
	pb := persist.NewPersister(b, obj.client(), persist.Options{Logger: quiet, Writer: "b"})
	_, err = pb.Restore(ctx)
	require.NoError(t, err)

	// A writes revision 3.
	commit(t, a, sample("a")...)
	commit(t, a, store.Set("edge", xdstest.Cluster("a1")))
	commit(t, a, store.Set("edge", xdstest.Cluster("a2")))
	wrote, err := pa.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)

	// B, at revision 1 with other content, conflicts and keeps A's newer one.
	commit(t, b, sample("b")...)
	wrote, err = pb.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)
	assert.Equal(t, uint64(1), pb.Stats().Conflicts)
	writer(pa, "a")

	// At revision 2 B knows, without asking, that A's is still newer.
	commit(t, b, store.Set("mesh", xdstest.Cluster("b1")))
	wrote, err = pb.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)
	assert.Equal(t, 1, obj.writeCount())

	// Past A's revision, B's snapshot replaces A's.
	commit(t, b, store.Set("mesh", xdstest.Cluster("b2")))
	commit(t, b, store.Set("mesh", xdstest.Cluster("b3")))
	wrote, err = pb.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	assert.Equal(t, uint64(4), writer(pb, "b").Revision)

	// A's ETag is stale now; it commits to revision 4 as well, later: at equal
	// revisions the later last commit wins.
	commit(t, a, store.Set("edge", xdstest.Cluster("a3")))
	wrote, err = pa.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	assert.Equal(t, uint64(1), pa.Stats().Conflicts)
	assert.Equal(t, uint64(4), writer(pa, "a").Revision)

	// C could not read the location at start (no Restore): at its first conflict
	// it continues the revisions it finds, and its later commit wins.
	c := storeWith(t, sample("c")...)
	pc := persist.NewPersister(c, obj.client(), persist.Options{Logger: quiet, Writer: "c"})
	wrote, err = pc.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	assert.Equal(t, uint64(1), pc.Stats().Conflicts)
	assert.Equal(t, uint64(4), writer(pc, "c").Revision)

	// D holds exactly what is there: nothing to write.
	d := store.New()
	_, err = persist.Restore(ctx, obj.client(), d)
	require.NoError(t, err)
	pd := persist.NewPersister(d, obj.client(), persist.Options{Logger: quiet, Writer: "d"})
	before := obj.writeCount()
	wrote, err = pd.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)
	assert.Equal(t, before, obj.writeCount())
	assert.Equal(t, uint64(1), pd.Stats().Conflicts, "it found out by a conditional write")

	// A snapshot there that fails its checks is set aside, then replaced.
	obj.mu.Lock()
	obj.data = []byte("garbage")
	obj.etag++
	obj.mu.Unlock()
	commit(t, a, store.Set("edge", xdstest.Cluster("a4")))
	wrote, err = pa.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote)
	require.Len(t, obj.aside, 1)
	for _, kept := range obj.aside {
		assert.Equal(t, "garbage", string(kept))
	}
	writer(pa, "a")
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	obj := newMemObject()
	st := storeWith(t, sample("a")...)
	p := persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet})
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(p))

	_, err := p.Persist(ctx)
	require.NoError(t, err)
	obj.setDown(true)
	commit(t, st, sample("b")...)
	_, err = p.Persist(ctx)
	require.Error(t, err)

	got := gather(t, reg)
	assert.Equal(t, 1.0, got["leanxds_snapshot_writes_total"])
	assert.Equal(t, 1.0, got["leanxds_snapshot_write_failures_total"])
	assert.Equal(t, float64(len(obj.content())), got["leanxds_snapshot_bytes"])
	assert.InDelta(t, float64(time.Now().Unix()), got["leanxds_snapshot_last_success_timestamp_seconds"], 60)
	assert.Equal(t, 2.0, got["leanxds_snapshot_write_duration_seconds"], "histogram sample count")
}

// gather returns each metric's value (a histogram's sample count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out[mf.GetName()] = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			out[mf.GetName()] = m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			out[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
