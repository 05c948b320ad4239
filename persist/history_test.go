package persist_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

func commitAs(t testing.TB, st *store.Store, source string, changes ...store.Change) store.Result {
	t.Helper()
	res, err := st.CommitWith(store.CommitOptions{Source: source}, changes...)
	require.NoError(t, err)
	return res
}

// history builds a store with a history worth keeping: several scopes, adds,
// changes, deletes, a scope created late, one emptied, a rollback, and a
// revision held past K (so the history has a gap).
func history(t testing.TB) (*store.Store, func()) {
	st := store.New(store.KeepHistory(4))
	commitAs(t, st, "dir /etc/leanxds", sample("a")...)
	held := st.View().Revision()
	release, err := st.Hold("edge", held)
	require.NoError(t, err)
	commitAs(t, st, "dir /etc/leanxds", store.Set("edge", xdstest.Cluster("web", xdstest.WithConnectTimeout(3*time.Second), xdstest.WithUpstreamTLS("tls"))))
	commitAs(t, st, "etcd gen 4", store.Set("late", xdstest.Cluster("n")), store.Delete("mesh", protocol.TypeRuntime, "rt"))
	commitAs(t, st, "dir /etc/leanxds", store.Set("edge", xdstest.Runtime("rt", map[string]any{"variant": "c"})))
	commitAs(t, st, "", store.ReplaceScope("late"))
	for i := range 4 {
		commitAs(t, st, "loop", store.Set("edge", xdstest.Cluster("api", xdstest.WithConnectTimeout(time.Duration(i+1)*time.Second))))
	}
	_, err = st.RollbackTo(held, "")
	require.NoError(t, err)
	return st, release
}

// requireSameHistory fails unless a and b keep the same revisions of every
// scope (numbers, times, sources, counts, summaries, gaps) with the same
// content at each (names and versions).
func requireSameHistory(t testing.TB, a, b store.View) {
	t.Helper()
	ra, rb := a.Revisions(), b.Revisions()
	require.Equal(t, len(ra), len(rb), "revisions")
	for i := range ra {
		x, y := ra[i], rb[i]
		where := fmt.Sprintf("%s@%d", x.Scope, x.Revision)
		require.Equal(t, x.Revision, y.Revision, where)
		require.Equal(t, x.Scope, y.Scope, where)
		require.True(t, x.At.Equal(y.At), "%s: at %v, %v", where, x.At, y.At)
		require.Equal(t, x.Source, y.Source, where)
		require.Equal(t, x.Resources, y.Resources, where)
		require.Equal(t, x.Summary, y.Summary, where)
		require.Equal(t, x.First, y.First, where)
		require.Equal(t, x.Until, y.Until, where)
		for _, ti := range protocol.Types() {
			ta, tb := x.Table(ti.URL), y.Table(ti.URL)
			require.Equal(t, ta.Len(), tb.Len(), "%s %s", where, ti.Short)
			require.Equal(t, ta.Digest(), tb.Digest(), "%s %s", where, ti.Short)
			for e := range ta.All() {
				require.NotNil(t, tb.Get(e.Name), "%s %s %s", where, ti.Short, e.Name)
				require.Equal(t, e.Version, tb.Get(e.Name).Version, "%s %s %s", where, ti.Short, e.Name)
			}
		}
	}
}

// A snapshot keeps the store's history: after a restart, the store holds the
// same revisions (numbers, times, sources, summaries, content) and continues
// the numbering; the snapshot's lineage revision is the store's revision.
func TestSnapshotKeepsHistoryAcrossRestart(t *testing.T) {
	ctx := context.Background()
	st, release := history(t)
	defer release()
	before := st.View()
	obj := newMemObject()
	p := persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet})
	wrote, err := p.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)
	snap, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, before.Revision(), snap.Revision, "a fresh lineage: the lineage revision is the store's")
	require.Len(t, snap.History, 3)
	assert.Empty(t, snap.History[0].Revisions[0].Set, "the newest revision is the content")

	restarted := store.New(store.KeepHistory(4))
	p2 := persist.NewPersister(restarted, obj.client(), persist.Options{Logger: quiet})
	info, err := p2.Restore(ctx)
	require.NoError(t, err)
	require.True(t, info.Restored)
	assert.True(t, info.Numbered)
	assert.Empty(t, info.HistoryErr)
	assert.Equal(t, len(before.Revisions()), info.Revisions)
	assert.Contains(t, info.String(), fmt.Sprintf("%d revisions of history, continuing at revision %d", info.Revisions, before.Revision()))
	after := restarted.View()
	assert.Equal(t, before.Revision(), after.Revision())
	assert.Equal(t, before.Revision(), info.StoreRevision)
	assert.True(t, before.CommittedAt().Equal(after.CommittedAt()))
	requireSameContent(t, before, after)
	requireSameHistory(t, before, after)

	// Revisions the history covers are answered as before; the gap too.
	for _, r := range before.History("edge") {
		for _, rev := range []uint64{r.Revision, r.Revision + 1} {
			va, oka := before.ScopeAt("edge", rev)
			vb, okb := after.ScopeAt("edge", rev)
			require.Equal(t, oka, okb, "revision %d", rev)
			if oka {
				assert.Equal(t, va.Table("edge", protocol.TypeCluster).Digest(), vb.Table("edge", protocol.TypeCluster).Digest())
			}
		}
	}

	// Nothing changed: nothing to write back.
	wrote, err = p2.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)

	// The numbering continues, in the store and in the snapshot.
	res := commitAs(t, restarted, "after", store.Set("edge", xdstest.Cluster("new")))
	assert.Equal(t, before.Revision()+1, res.Revision)
	wrote, err = p2.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)
	snap2, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, res.Revision, snap2.Revision)

	// A rollback after the restart puts back the very versions the store held
	// before it.
	target := before.History("edge")[2].Revision
	_, err = restarted.RollbackTo(target, "")
	require.NoError(t, err)
	for _, scope := range []string{"edge", "mesh", "late"} {
		want, ok := before.ScopeAt(scope, target)
		require.True(t, ok)
		for _, ti := range protocol.Types() {
			w, g := want.Table(scope, ti.URL), restarted.View().Table(scope, ti.URL)
			require.Equal(t, w.Digest(), g.Digest(), "%s %s", scope, ti.Short)
			require.Equal(t, w.Len(), g.Len())
			for e := range w.All() {
				require.Equal(t, e.Version, g.Get(e.Name).Version)
			}
		}
	}
	// Past K since the restart (the Hold was not taken again), the held
	// revision is gone.
	_, err = restarted.RollbackTo(before.History("edge")[4].Revision, "")
	assert.Error(t, err)
}

// The history is written as differences: K revisions that each change one
// resource of 2,000 cost about what changed, not K copies.
func TestSnapshotHistoryCostsWhatChanged(t *testing.T) {
	fill := func(st *store.Store, variant int) {
		changes := []store.Change{store.ReplaceScope("edge")}
		for i := range 2000 {
			c := xdstest.Cluster(fmt.Sprintf("c%04d", i))
			if i == 7 {
				c = xdstest.Cluster("c0007", xdstest.WithConnectTimeout(time.Duration(variant+1)*time.Second))
			}
			changes = append(changes, store.Set("edge", c))
		}
		commit(t, st, changes...)
	}
	one, ten := store.New(store.KeepHistory(1)), store.New(store.KeepHistory(10))
	for v := range 10 {
		fill(one, v)
		fill(ten, v)
	}
	require.Len(t, ten.View().History("edge"), 10)
	a, _ := persist.Encode(one.View(), persist.Meta{WrittenAt: written})
	b, _ := persist.Encode(ten.View(), persist.Meta{WrittenAt: written})
	perRevision := (len(b) - len(a)) / 9
	t.Logf("snapshot: %d bytes with 1 revision, %d with 10: %d bytes per revision", len(a), len(b), perRevision)
	assert.Less(t, perRevision, 400, "one changed cluster and the revision's record")
}

// Attachments ride along in every snapshot; a changed one is written even when
// the store did not change, and a restore gives them back.
func TestAttachments(t *testing.T) {
	ctx := context.Background()
	obj := newMemObject()
	st := storeWith(t, sample("a")...)
	p := persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet})
	require.NoError(t, p.SetAttachment("rollout", []byte(`{"stage":1}`)))
	wrote, err := p.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)

	require.NoError(t, p.SetAttachment("rollout", []byte(`{"stage":1}`)))
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote, "the same data changes nothing")

	require.NoError(t, p.SetAttachment("rollout", []byte(`{"stage":2}`)))
	require.NoError(t, p.SetAttachment("other", []byte("x")))
	wrote, err = p.Persist(ctx)
	require.NoError(t, err)
	assert.True(t, wrote, "a changed attachment is written though the store did not change")
	snap, err := persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"rollout": []byte(`{"stage":2}`), "other": []byte("x")}, snap.Attachments)
	assert.Equal(t, persist.ContentDigest(st.View()), snap.ContentDigest, "attachments are not content")

	// A restart gives them back, and keeps them in the next snapshots.
	st2 := store.New()
	p2 := persist.NewPersister(st2, obj.client(), persist.Options{Logger: quiet})
	info, err := p2.Restore(ctx)
	require.NoError(t, err)
	assert.Equal(t, snap.Attachments, info.Attachments)
	wrote, err = p2.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)
	require.NoError(t, p2.SetAttachment("other", nil)) // removed
	commit(t, st2, store.Set("edge", xdstest.Cluster("new")))
	wrote, err = p2.Persist(ctx)
	require.NoError(t, err)
	require.True(t, wrote)
	snap, err = persist.Decode(obj.content())
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"rollout": []byte(`{"stage":2}`)}, snap.Attachments)

	// The bounds a restore enforces are enforced here first.
	assert.Error(t, p2.SetAttachment("", []byte("x")))
	assert.Error(t, p2.SetAttachment(strings.Repeat("n", persist.MaxAttachmentName+1), []byte("x")))
	assert.Error(t, p2.SetAttachment("big", make([]byte, persist.MaxAttachmentBytes)))
	for i := range persist.MaxAttachments - 1 {
		require.NoError(t, p2.SetAttachment(fmt.Sprint(i), []byte("x")))
	}
	assert.ErrorContains(t, p2.SetAttachment("one too many", []byte("x")), "MaxAttachments")
}

// A snapshot of format version 1, written by that format's encoder
// (testdata/v1.snap: two scopes of 9 resources, lineage revision 7), is
// restored; the store continues its lineage's numbering, and its history
// starts at the restore, which it does not know the content before.
func TestRestoreFormatVersion1(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile("testdata/v1.snap")
	require.NoError(t, err)
	require.Equal(t, uint32(1), binary.BigEndian.Uint32(data[8:]))
	snap, err := persist.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), snap.Revision)
	assert.Equal(t, "v1-writer", snap.Writer)
	assert.Equal(t, 18, snap.Resources)
	assert.Empty(t, snap.History)
	assert.Nil(t, snap.Attachments)

	path := tempSnapshot(t)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	st := store.New()
	p := persist.NewPersister(st, openFile(t, path), persist.Options{Logger: quiet})
	info, err := p.Restore(ctx)
	require.NoError(t, err)
	require.True(t, info.Restored)
	assert.Zero(t, info.Mismatched)
	assert.True(t, info.Numbered)
	v := st.View()
	assert.Equal(t, uint64(7), v.Revision())
	n := 0
	for _, sc := range snap.Scopes {
		for _, tab := range sc.Tables {
			for _, e := range tab.Entries {
				got := v.Table(sc.Name, tab.TypeURL).Get(e.Name)
				require.NotNil(t, got)
				assert.Equal(t, e.Version, got.Version)
				n++
			}
		}
	}
	assert.Equal(t, 18, n)
	assert.Equal(t, snap.ContentDigest, persist.ContentDigest(v))
	h := v.History("edge")
	require.Len(t, h, 1)
	assert.Equal(t, "restore", h[0].Source)
	assert.Equal(t, uint64(7), h[0].Revision)
	assert.False(t, h[0].First, "what came before the restore is unknown")
	_, err = st.RollbackTo(3, "")
	assert.ErrorContains(t, err, "from 7 on")

	// The next snapshot is of format 2 and continues the numbering.
	commit(t, st, store.Set("edge", xdstest.Cluster("new")))
	_, err = p.Persist(ctx)
	require.NoError(t, err)
	now, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, persist.FormatVersion, binary.BigEndian.Uint32(now[8:]))
	snap, err = persist.Decode(now)
	require.NoError(t, err)
	assert.Equal(t, uint64(8), snap.Revision)
}

// A store that has passed the snapshot's revisions restores the content alone,
// as a revision of its own, and says the history was left out.
func TestRestoreIntoAStoreAheadKeepsItsNumbering(t *testing.T) {
	ctx := context.Background()
	st, release := history(t)
	defer release()
	obj := newMemObject()
	_, err := persist.NewPersister(st, obj.client(), persist.Options{Logger: quiet}).Persist(ctx)
	require.NoError(t, err)

	ahead := store.New()
	for i := range 20 {
		commit(t, ahead, store.Set("x", xdstest.Cluster("c", xdstest.WithConnectTimeout(time.Duration(i+1)*time.Second))))
	}
	info, err := persist.Restore(ctx, obj.client(), ahead)
	require.NoError(t, err)
	require.True(t, info.Restored)
	assert.False(t, info.Numbered)
	assert.Contains(t, info.HistoryErr, "past the snapshot's revision")
	assert.Contains(t, info.String(), "history not restored")
	assert.Equal(t, uint64(21), ahead.View().Revision())
	requireSameContent(t, st.View(), ahead.View())
	assert.Equal(t, "restore", ahead.View().History("edge")[0].Source)
}

// rebody rewrites a valid snapshot with extra fields after its content (in
// place of its history and attachments), fixing the checksum: a snapshot a
// hostile or broken writer could make.
func rebody(t testing.TB, data []byte, extra []byte) []byte {
	t.Helper()
	bodyLen := binary.BigEndian.Uint64(data[12:20])
	body := data[20 : 20+int(bodyLen)]
	end := 0
	for end < len(body) {
		num, _, k := protowire.ConsumeTag(body[end:])
		if k < 0 || num > 2 {
			break
		}
		l := protowire.ConsumeFieldValue(num, protowire.BytesType, body[end+k:])
		require.Positive(t, l)
		end += k + l
	}
	newBody := append(bytes.Clone(body[:end]), extra...)
	out := bytes.Clone(data[:12])
	out = binary.BigEndian.AppendUint64(out, uint64(len(newBody)))
	out = append(out, newBody...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

func msg(num protowire.Number, fields ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, bytes.Join(fields, nil))
}

func str(num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
}

func varint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// historyOf makes a history message of scope "edge" with the given revision
// messages.
func historyOf(revs ...[]byte) []byte {
	var b [][]byte
	b = append(b, str(1, "edge"))
	for _, r := range revs {
		b = append(b, msg(2, r))
	}
	return msg(3, b...)
}

// A snapshot that would make the server hold more than the bounds, or whose
// history is inconsistent, is refused with an error naming what is wrong.
func TestDecodeRefusesHostileHistoryAndAttachments(t *testing.T) {
	st := storeWith(t, sample("a")...)
	valid, _ := persist.Encode(st.View(), persist.Meta{WrittenAt: written})
	edgeCount := uint64(9)
	newest := bytes.Join([][]byte{varint(1, 5), varint(4, edgeCount)}, nil)
	top := uint64(1 << 20)
	manyAttachments := make([][]byte, 0, persist.MaxAttachments+1)
	for i := range persist.MaxAttachments + 1 {
		manyAttachments = append(manyAttachments, msg(4, str(1, fmt.Sprintf("a%03d", i)), str(2, "x")))
	}
	manyRevisions := [][]byte{bytes.Join([][]byte{varint(1, top), varint(4, edgeCount)}, nil)}
	for i := range persist.MaxHistoryRevisions {
		manyRevisions = append(manyRevisions, varint(1, top-1-uint64(i)))
	}
	cases := []struct {
		name  string
		extra []byte
		says  string
	}{
		{"too many attachments", bytes.Join(manyAttachments, nil), "more than 64 attachments"},
		{"too many attachment bytes", bytes.Join([][]byte{
			msg(4, str(1, "a"), str(2, strings.Repeat("x", persist.MaxAttachmentBytes/2+1))),
			msg(4, str(1, "b"), str(2, strings.Repeat("x", persist.MaxAttachmentBytes/2+1))),
		}, nil), "MaxAttachmentBytes"},
		{"attachments out of order", bytes.Join([][]byte{msg(4, str(1, "b"), str(2, "x")), msg(4, str(1, "a"), str(2, "x"))}, nil), "out of order"},
		{"attachment without a name", msg(4, str(2, "x")), "a name of 0 bytes"},
		{"attachment before history", bytes.Join([][]byte{msg(4, str(1, "a"), str(2, "x")), historyOf(newest)}, nil), "out of order"},
		{"unknown field", msg(9, str(1, "x")), "unexpected field 9"},
		{"newest revision with differences", historyOf(bytes.Join([][]byte{newest, msg(12, str(1, protocol.TypeCluster), str(2, "gone"))}, nil)), "its newest revision has differences"},
		{"newest revision not the content", historyOf(bytes.Join([][]byte{varint(1, 5), varint(4, 3)}, nil)), "holds 3 resources, the content 9"},
		{"revisions out of order", historyOf(newest, varint(1, 9)), "out of order"},
		{"revision 0", historyOf(varint(1, 0)), "revision 0"},
		{"unknown type", historyOf(newest, bytes.Join([][]byte{varint(1, 2), msg(12, str(1, "type.googleapis.com/x.Y"), str(2, "n"))}, nil)), "not served"},
		{"held and absent", historyOf(newest, bytes.Join([][]byte{varint(1, 2),
			msg(11, str(1, protocol.TypeCluster), str(2, "n"), str(3, "v"), str(4, "")),
			msg(12, str(1, protocol.TypeCluster), str(2, "n"))}, nil)), "both held and absent"},
		{"until outside its place", historyOf(newest, bytes.Join([][]byte{varint(1, 2), varint(10, 9)}, nil)), "outside its place"},
		{"source too long", historyOf(bytes.Join([][]byte{newest, str(3, strings.Repeat("s", persist.MaxSourceBytes+1))}, nil)), "MaxSourceBytes"},
		{"too many summary names", historyOf(bytes.Join(append([][]byte{newest}, bytes.Repeat(str(8, "+CDS/x"), store.MaxSummaryNames+1)), nil)), "names in a summary"},
		{"too many revisions", historyOf(manyRevisions...), "MaxHistoryRevisions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := persist.Decode(rebody(t, valid, c.extra))
			require.Error(t, err)
			assert.ErrorIs(t, err, persist.ErrBody)
			assert.ErrorContains(t, err, c.says)
		})
	}
	// The same fields in a version 1 snapshot are refused too.
	v1 := rebody(t, valid, msg(4, str(1, "a"), str(2, "x")))
	binary.BigEndian.PutUint32(v1[8:], 1)
	v1 = append(v1[:len(v1)-32], func() []byte { s := sha256.Sum256(v1[:len(v1)-32]); return s[:] }()...)
	_, err := persist.Decode(v1)
	assert.ErrorContains(t, err, "unexpected field 4")
	// A well-formed one decodes.
	_, err = persist.Decode(rebody(t, valid, bytes.Join([][]byte{historyOf(newest), msg(4, str(1, "a"), str(2, "x"))}, nil)))
	assert.NoError(t, err)
}

// A history this build cannot replay (here: a resource it cannot decode) does
// not cost the content: it is restored alone, and the restore says why.
func TestRestoreWithoutAnUnusableHistory(t *testing.T) {
	ctx := context.Background()
	st := storeWith(t, sample("a")...)
	valid, _ := persist.Encode(st.View(), persist.Meta{WrittenAt: written, Revision: 5})
	bad := rebody(t, valid, historyOf(
		bytes.Join([][]byte{varint(1, 5), varint(4, 9)}, nil),
		bytes.Join([][]byte{varint(1, 2), msg(11, str(1, protocol.TypeCluster), str(2, "web"), str(3, "v"), str(4, "\xff\xff"))}, nil),
	))
	obj := newMemObject()
	require.NoError(t, obj.client().Write(ctx, bad))
	fresh := store.New()
	info, err := persist.Restore(ctx, obj.client(), fresh)
	require.NoError(t, err)
	require.True(t, info.Restored)
	assert.Contains(t, info.HistoryErr, "history not restored")
	assert.False(t, info.Numbered)
	requireSameContent(t, st.View(), fresh.View())
}

// seal wraps body in a snapshot of format version with a valid checksum, so
// that what Decode parses is body itself.
func seal(version uint32, body []byte) []byte {
	out := []byte(persist.Magic)
	out = binary.BigEndian.AppendUint32(out, version)
	out = binary.BigEndian.AppendUint64(out, uint64(len(body)))
	out = append(out, body...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// Decode never panics, whatever the body (sealed with a valid checksum, so
// that the parsing is what is fuzzed), and fails with ErrBody.
func FuzzDecodeBody(f *testing.F) {
	st, release := history(f)
	defer release()
	v2, _ := persist.Encode(st.View(), persist.Meta{WrittenAt: written, Attachments: map[string][]byte{"rollout": []byte("{}")}})
	f.Add(uint8(2), v2[20:len(v2)-32])
	v1, err := os.ReadFile("testdata/v1.snap")
	require.NoError(f, err)
	f.Add(uint8(1), v1[20:len(v1)-32])
	f.Add(uint8(2), []byte{})
	f.Fuzz(func(t *testing.T, version uint8, body []byte) {
		snap, err := persist.Decode(seal(uint32(version%2+1), body))
		if err != nil {
			assert.Nil(t, snap)
			assert.ErrorIs(t, err, persist.ErrBody)
			return
		}
		for _, h := range snap.History {
			assert.NotEmpty(t, h.Revisions)
		}
		assert.LessOrEqual(t, len(snap.Attachments), persist.MaxAttachments)
	})
}

// The restored history keeps nothing of the snapshot's bytes: entries, sources,
// summaries and the names the tables' change logs hold (deleted ones too) are
// the store's own.
func TestRestoredHistoryOutlivesTheSnapshotBytes(t *testing.T) {
	st, release := history(t)
	defer release()
	data, _ := persist.Encode(st.View(), persist.Meta{Revision: st.View().Revision()})
	restored := store.New(store.KeepHistory(4))
	info, err := persist.Restore(context.Background(), fixedSnapshot(data), restored)
	require.NoError(t, err)
	require.True(t, info.Numbered)
	clear(data)
	requireSameContent(t, st.View(), restored.View())
	requireSameHistory(t, st.View(), restored.View())
	v := restored.View()
	for _, scope := range []string{"edge", "mesh", "late"} {
		for _, ti := range protocol.Types() {
			names, ok := v.Table(scope, ti.URL).ChangedSince(0)
			require.True(t, ok)
			for _, n := range names {
				assert.NotContains(t, n, "\x00", "%s %s", scope, ti.Short)
				assert.NotEmpty(t, n)
			}
		}
	}
}
