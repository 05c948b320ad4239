package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

func commitFrom(t testing.TB, st *store.Store, source string, changes ...store.Change) store.Result {
	t.Helper()
	res, err := st.CommitWith(store.CommitOptions{Source: source}, changes...)
	require.NoError(t, err)
	return res
}

func timeout(name string, s int) store.Change {
	return store.Set(scope, xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(s)*time.Second)))
}

// Each commit that changes a scope adds a revision to its history: number,
// time, source, resource count and a summary of what changed.
func TestHistoryRecordsEachRevision(t *testing.T) {
	st := store.New()
	r1 := commitFrom(t, st, "dir /etc/leanxds", store.Set(scope, xdstest.Cluster("b")), store.Set(scope, xdstest.Cluster("a")),
		store.Set(scope, xdstest.Listener("l", 80, "r")), store.Set("other", xdstest.Cluster("z")))
	assert.Equal(t, []string{"edge", "other"}, r1.Scopes)
	r2 := commitFrom(t, st, "", timeout("a", 3), store.Delete(scope, protocol.TypeCluster, "b"), store.Set(scope, xdstest.Cluster("c")))
	assert.Equal(t, []string{"edge"}, r2.Scopes)
	commitFrom(t, st, "again", store.Set(scope, xdstest.Cluster("c"))) // nothing changes: no revision

	v := st.View()
	h := v.History(scope)
	require.Len(t, h, 2)
	assert.Equal(t, r2.Revision, h[0].Revision)
	assert.Equal(t, "commit", h[0].Source, `source "" is recorded as "commit"`)
	assert.Equal(t, scope, h[0].Scope)
	assert.Equal(t, v.CommittedAt(), h[0].At)
	assert.Equal(t, 3, h[0].Resources)
	assert.Equal(t, store.Summary{Added: 1, Changed: 1, Removed: 1, Names: []string{"~CDS/a", "-CDS/b", "+CDS/c"}}, h[0].Summary)
	assert.False(t, h[0].First)

	assert.Equal(t, r1.Revision, h[1].Revision)
	assert.Equal(t, "dir /etc/leanxds", h[1].Source)
	assert.Equal(t, 3, h[1].Resources)
	// Push order (R15): clusters before listeners, then by name.
	assert.Equal(t, store.Summary{Added: 3, Names: []string{"+CDS/a", "+CDS/b", "+LDS/l"}}, h[1].Summary)
	assert.True(t, h[1].First, "the scope held nothing before")
	assert.False(t, h[1].At.After(h[0].At))

	all := v.Revisions()
	require.Len(t, all, 3)
	assert.Equal(t, []uint64{r2.Revision, r1.Revision, r1.Revision}, []uint64{all[0].Revision, all[1].Revision, all[2].Revision})
	assert.Equal(t, []string{"edge", "edge", "other"}, []string{all[0].Scope, all[1].Scope, all[2].Scope})

	// A revision's content is the scope as that commit left it.
	assert.NotNil(t, h[1].Table(protocol.TypeCluster).Get("b"))
	assert.Nil(t, h[0].Table(protocol.TypeCluster).Get("b"))
	var types []string
	for u := range h[1].Tables() {
		types = append(types, protocol.Short(u))
	}
	assert.Equal(t, []string{"CDS", "LDS"}, types)

	// The answer is the caller's.
	h[0].Summary.Names[0] = "x"
	assert.Equal(t, "~CDS/a", st.View().History(scope)[0].Summary.Names[0])
	assert.Empty(t, v.History("nobody"))
}

// A summary names the first MaxSummaryNames resources and counts all.
func TestHistorySummaryIsBounded(t *testing.T) {
	st := store.New()
	var changes []store.Change
	for i := range 50 {
		changes = append(changes, store.Set(scope, xdstest.Cluster(fmt.Sprintf("c%02d", 49-i))))
	}
	commit(t, st, changes...)
	s := st.View().History(scope)[0].Summary
	assert.Equal(t, 50, s.Added)
	require.Len(t, s.Names, store.MaxSummaryNames)
	for i, n := range s.Names {
		assert.Equal(t, fmt.Sprintf("+CDS/c%02d", i), n)
	}
}

// The history keeps the last K revisions of each scope; ScopeAt reads any
// revision they reach, and says when they do not.
func TestHistoryKeepsK(t *testing.T) {
	st := store.New(store.KeepHistory(3))
	var revs []uint64
	for i := range 5 {
		revs = append(revs, commit(t, st, timeout("a", i+1)).Revision)
	}
	commit(t, st, store.Set("other", xdstest.Cluster("z"))) // another scope's revision
	v := st.View()
	h := v.History(scope)
	require.Len(t, h, 3)
	assert.Equal(t, []uint64{revs[4], revs[3], revs[2]}, []uint64{h[0].Revision, h[1].Revision, h[2].Revision})
	assert.False(t, h[2].First)

	at, ok := v.ScopeAt(scope, revs[3])
	require.True(t, ok)
	assert.Same(t, h[1].Table(protocol.TypeCluster).Get("a"), at.Table(scope, protocol.TypeCluster).Get("a"))
	assert.Equal(t, revs[3], at.Revision(), "the view is as of revs[3]: a node served it runs that revision")
	assert.Same(t, v.Table("other", protocol.TypeCluster), at.Table("other", protocol.TypeCluster), "other scopes are v's")
	assert.Same(t, v.Table(scope, protocol.TypeCluster), st.View().Table(scope, protocol.TypeCluster), "v itself is unchanged")

	_, ok = v.ScopeAt(scope, revs[1])
	assert.False(t, ok, "dropped from the history")

	// "other" was created after revs[4] and its history reaches its beginning:
	// it was empty then.
	at, ok = v.ScopeAt("other", revs[4])
	require.True(t, ok)
	assert.False(t, at.HasScope("other"))
	assert.Zero(t, at.Table("other", protocol.TypeCluster).Len())
	// A scope that never held anything is empty at every revision.
	_, ok = v.ScopeAt("nobody", 1)
	assert.True(t, ok)

	// KeepHistory(1) keeps the current content alone; n < 1 is 1.
	one := store.New(store.KeepHistory(0))
	commit(t, one, timeout("a", 1))
	commit(t, one, timeout("a", 2))
	assert.Len(t, one.View().History(scope), 1)
}

// Holding a revision costs only what differs from newer ones: a revision of
// 1,000 clusters that differs from the next in one shares the other 999
// entries, every trie leaf but the changed one, and every other table.
func TestHistorySharesUnchangedTablesAndEntries(t *testing.T) {
	st := store.New()
	commit(t, st, append(clusters(1000, ""), store.Set(scope, xdstest.Listener("l", 80, "r")))...)
	commit(t, st, append(clusters(1000, "c042"), store.Set(scope, xdstest.Listener("l", 80, "r")))...)
	h := st.View().History(scope)
	require.Len(t, h, 2)
	older, newer := h[1].Table(protocol.TypeCluster), h[0].Table(protocol.TypeCluster)
	require.NotSame(t, older, newer)
	assert.Same(t, h[1].Table(protocol.TypeListener), h[0].Table(protocol.TypeListener), "an unchanged table is shared")
	for e := range older.All() {
		if e.Name == "c042" {
			assert.NotSame(t, e, newer.Get(e.Name))
			continue
		}
		assert.Same(t, e, newer.Get(e.Name), e.Name)
	}
	var diff []string
	for was, is := range older.Diff(newer) {
		assert.NotSame(t, was, is)
		diff = append(diff, was.Name)
	}
	assert.Equal(t, []string{"c042"}, diff)
	assert.Equal(t, store.Summary{Changed: 1, Names: []string{"~CDS/c042"}}, h[0].Summary)
}

// Table.Diff reports additions, changes and removals, each once.
func TestTableDiff(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("b")))
	before := st.View().Table(scope, protocol.TypeCluster)
	commit(t, st, timeout("a", 9), store.Delete(scope, protocol.TypeCluster, "b"), store.Set(scope, xdstest.Cluster("c")))
	after := st.View().Table(scope, protocol.TypeCluster)
	got := map[string][2]bool{}
	for was, is := range before.Diff(after) {
		name := ""
		if was != nil {
			name = was.Name
		} else {
			name = is.Name
		}
		_, dup := got[name]
		assert.False(t, dup, name)
		got[name] = [2]bool{was != nil, is != nil}
	}
	assert.Equal(t, map[string][2]bool{"a": {true, true}, "b": {true, false}, "c": {false, true}}, got)
	var n int
	for range before.Diff(before) {
		n++
	}
	assert.Zero(t, n)
	for was, is := range after.Diff(st.View().Table(scope, protocol.TypeListener)) {
		assert.Nil(t, is)
		assert.NotNil(t, was)
		n++
	}
	assert.Equal(t, 2, n, "against an empty table: every entry")
}

// snapshotOf records what a client would hold of every table of a view: each
// entry's pointer and version, and each table's digest.
type tableState struct {
	digest  protocol.Digest
	entries map[string]*store.Entry
}

func stateOf(v store.View) map[string]tableState {
	out := map[string]tableState{}
	for _, sc := range v.Scopes() {
		for u, t := range v.Tables(sc) {
			ts := tableState{digest: t.Digest(), entries: map[string]*store.Entry{}}
			for e := range t.All() {
				ts.entries[e.Name] = e
			}
			out[sc+" "+protocol.Short(u)] = ts
		}
	}
	return out
}

func assertSameState(t *testing.T, want, got map[string]tableState) {
	t.Helper()
	require.Equal(t, len(want), len(got), "tables")
	for k, w := range want {
		g := got[k]
		assert.Equal(t, w.digest, g.digest, "table %s: digest", k)
		require.Equal(t, len(w.entries), len(g.entries), "table %s", k)
		for n, e := range w.entries {
			require.NotNil(t, g.entries[n], "%s %s", k, n)
			assert.Same(t, e, g.entries[n], "%s %s: the very entry", k, n)
			assert.Equal(t, e.Version, g.entries[n].Version)
		}
	}
}

// RollbackTo puts every scope back to its content at a revision, in one
// commit, with the very entries it held then (same bytes, same versions, S3,
// D8): a scope created since is emptied. The rollback is a revision of the
// history, and can itself be rolled back.
func TestRollbackTo(t *testing.T) {
	st := store.New()
	commit(t, st, store.Set(scope, xdstest.Cluster("a")), store.Set(scope, xdstest.Cluster("b")),
		store.Set(scope, xdstest.Listener("l", 80, "r")), store.Set("other", xdstest.Cluster("z")))
	good := st.View()
	wantGood := stateOf(good)

	commit(t, st, timeout("a", 9), store.Delete(scope, protocol.TypeCluster, "b"), store.Set(scope, xdstest.Cluster("c")),
		store.Delete(scope, protocol.TypeListener, "l"))
	commit(t, st, store.Set("late", xdstest.Cluster("n")), store.Set("other", xdstest.Cluster("y")))
	bad := st.View()
	wantBad := stateOf(bad)

	w := st.NewWatcher()
	defer w.Close()
	w.Watch("late", protocol.TypeCluster)

	res, err := st.RollbackTo(good.Revision(), "")
	require.NoError(t, err)
	assert.Equal(t, bad.Revision()+1, res.Revision)
	assert.Equal(t, []string{"edge", "late", "other"}, res.Scopes)
	assert.Equal(t, 3, res.Set, "a, b, l back")
	assert.Equal(t, 3, res.Deleted, "c, n and y removed")
	v := st.View()
	assertSameState(t, wantGood, stateOf(v))
	assert.False(t, v.HasScope("late"))
	assert.Equal(t, good.Table(scope, protocol.TypeCluster).Get("a").Revision, v.Table(scope, protocol.TypeCluster).Get("a").Revision,
		"the entry is the one committed then")
	assert.Equal(t, res.Revision, v.Table(scope, protocol.TypeCluster).Revision(), "the table is new: its revision is the rollback's")
	select {
	case <-w.C:
	case <-time.After(10 * time.Second):
		t.Fatal("watchers of a changed table are signalled")
	}

	h := v.History(scope)
	assert.Equal(t, fmt.Sprintf("rollback to %d", good.Revision()), h[0].Source)
	assert.Equal(t, store.Summary{Added: 2, Changed: 1, Removed: 1, Names: []string{"~CDS/a", "+CDS/b", "-CDS/c", "+LDS/l"}}, h[0].Summary)
	assert.Equal(t, 0, v.History("late")[0].Resources)

	// A stream that held the bad tables finds what changed through the log.
	names, ok := v.Table(scope, protocol.TypeCluster).ChangedSince(bad.Table(scope, protocol.TypeCluster).Revision())
	require.True(t, ok)
	assert.Equal(t, []string{"a", "b", "c"}, names)

	// Rolling the rollback back restores the bad content, entries and all.
	res2, err := st.RollbackTo(bad.Revision(), "undo")
	require.NoError(t, err)
	assertSameState(t, wantBad, stateOf(st.View()))
	assert.Equal(t, "undo", st.View().History(scope)[0].Source)

	// A rollback to what the store holds changes nothing.
	res3, err := st.RollbackTo(res2.Revision, "")
	require.NoError(t, err)
	assert.False(t, res3.Changed())
	assert.Equal(t, res2.Revision, st.View().Revision())
}

// A rollback past what the history keeps is refused whole, naming each scope
// and the oldest revision kept; so is one to a revision the store has not
// reached.
func TestRollbackToBeyondHistory(t *testing.T) {
	st := store.New(store.KeepHistory(2))
	r1 := commit(t, st, timeout("a", 1), store.Set("other", xdstest.Cluster("z"))).Revision
	r2 := commit(t, st, timeout("a", 2)).Revision
	commit(t, st, timeout("a", 3))
	before := st.View()

	_, err := st.RollbackTo(r1, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf(`scope "edge": its history keeps revisions from %d on`, r2))
	assert.NotContains(t, err.Error(), `"other"`, "other's history reaches its beginning")
	assert.Contains(t, err.Error(), "nothing changed")
	assert.Same(t, before.Table(scope, protocol.TypeCluster), st.View().Table(scope, protocol.TypeCluster))
	assert.Equal(t, before.Revision(), st.View().Revision())

	_, err = st.RollbackTo(before.Revision()+1, "")
	assert.ErrorContains(t, err, "the store is at revision")

	// The revision kept is reachable.
	_, err = st.RollbackTo(r2, "")
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, connectTimeout(t, st.View(), "a"))
}

func connectTimeout(t *testing.T, v store.View, name string) time.Duration {
	t.Helper()
	e := v.Table(scope, protocol.TypeCluster).Get(name)
	require.NotNil(t, e)
	m := decodeCluster(t, e.Body)
	return m.GetConnectTimeout().AsDuration()
}

// Hold keeps a revision past K until it is released; the revisions between
// it and the newest K are dropped, and the history says which revisions the
// held content covers.
func TestHold(t *testing.T) {
	st := store.New(store.KeepHistory(2))
	base := commit(t, st, timeout("a", 1)).Revision
	release, err := st.Hold(scope, base)
	require.NoError(t, err)
	release2, err := st.Hold(scope, base) // held twice: kept until both release
	require.NoError(t, err)
	r2 := commit(t, st, timeout("a", 2)).Revision
	r3 := commit(t, st, timeout("a", 3)).Revision
	commit(t, st, timeout("a", 4))
	commit(t, st, timeout("a", 5))

	h := st.View().History(scope)
	require.Len(t, h, 3)
	assert.Equal(t, base, h[2].Revision)
	assert.Equal(t, r2, h[2].Until, "the next revision was dropped")
	at, ok := st.View().ScopeAt(scope, base)
	require.True(t, ok)
	assert.Equal(t, time.Second, connectTimeout(t, at, "a"))
	_, ok = st.View().ScopeAt(scope, r3)
	assert.False(t, ok, "a dropped revision is not answered by the held one")
	_, err = st.RollbackTo(r2, "")
	assert.Error(t, err)
	res, err := st.RollbackTo(base, "")
	require.NoError(t, err)
	assert.Equal(t, time.Second, connectTimeout(t, st.View(), "a"))
	assert.Equal(t, res.Revision, st.View().History(scope)[0].Revision)

	release()
	release() // idempotent: the second Hold still keeps it
	commit(t, st, timeout("a", 6))
	_, ok = st.View().ScopeAt(scope, base)
	assert.True(t, ok)
	release2()
	commit(t, st, timeout("a", 7))
	_, ok = st.View().ScopeAt(scope, base)
	assert.False(t, ok, "released: dropped at the next commit")

	_, err = st.Hold(scope, base)
	assert.ErrorContains(t, err, "history keeps revisions from")
	// A revision before a scope's first is held (the scope was empty then).
	rel, err := st.Hold("new", 1)
	require.NoError(t, err)
	rel()
}

// CommitWith's Check sees the history the commit would publish; a refusal
// leaves the history as it was.
func TestCommitWithCheckAndHistory(t *testing.T) {
	st := store.New()
	commit(t, st, timeout("a", 1))
	var seen []store.Revision
	_, err := st.CommitWith(store.CommitOptions{Source: "try", Check: func(next store.View, res store.Result) error {
		seen = next.History(scope)
		return fmt.Errorf("no")
	}}, timeout("a", 2))
	require.Error(t, err)
	require.Len(t, seen, 2)
	assert.Equal(t, "try", seen[0].Source)
	assert.Len(t, st.View().History(scope), 1)
}

// Replay brings back a history as a snapshot recorded it: revision numbers,
// times, sources and summaries; the store then continues the numbering.
func TestReplay(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	body := func(s int) []byte {
		b, err := marshalCluster(xdstest.Cluster("a", xdstest.WithConnectTimeout(time.Duration(s)*time.Second)))
		require.NoError(t, err)
		return b
	}
	past := []store.PastCommit{
		{Revision: 40, At: at, Changes: []store.Change{store.ReplaceScope(scope), store.SetEncoded(scope, protocol.TypeCluster, "a", body(1)),
			store.SetEncoded(scope, protocol.TypeCluster, "b", mustBody(t, xdstest.Cluster("b")))},
			Revisions: []store.Revision{{Scope: scope, Source: "dir x", Summary: store.Summary{Added: 5, Names: []string{"+CDS/a"}}}}},
		{Revision: 44, At: at.Add(time.Minute), Changes: []store.Change{store.SetEncoded(scope, protocol.TypeCluster, "a", body(2))},
			Revisions: []store.Revision{{Scope: scope, Source: "dir y", Summary: store.Summary{Changed: 1, Names: []string{"~CDS/a"}}}}},
		// A commit without its record is recorded as a restore.
		{Revision: 45, At: at.Add(2 * time.Minute), Changes: []store.Change{store.SetEncoded(scope, protocol.TypeCluster, "a", body(2)),
			store.SetEncoded("other", protocol.TypeCluster, "z", mustBody(t, xdstest.Cluster("z")))}},
	}
	st := store.New(store.KeepHistory(1)) // a replay keeps the history as recorded
	w := st.NewWatcher()
	defer w.Close()
	w.Watch(scope, protocol.TypeCluster)
	res, err := st.Replay(47, past)
	require.NoError(t, err)
	assert.Equal(t, uint64(47), res.Revision)
	assert.Equal(t, []string{scope, "other"}, res.Scopes)
	v := st.View()
	assert.Equal(t, uint64(47), v.Revision())
	o := v.History("other")
	require.Len(t, o, 1)
	assert.Equal(t, store.Summary{Added: 1, Names: []string{"+CDS/z"}}, o[0].Summary, "computed, against the replayed state")
	assert.Equal(t, at.Add(2*time.Minute), o[0].At)
	assert.Equal(t, "restore", o[0].Source)
	assert.Equal(t, uint64(45), o[0].Revision)
	assert.False(t, o[0].First, "a replay does not know what came before")
	h := v.History(scope)
	require.Len(t, h, 2)
	assert.Equal(t, uint64(44), h[0].Revision)
	assert.Equal(t, at.Add(time.Minute), h[0].At)
	assert.Equal(t, "dir y", h[0].Source)
	assert.Equal(t, 2, h[0].Resources)
	assert.Equal(t, store.Summary{Changed: 1, Names: []string{"~CDS/a"}}, h[0].Summary)
	assert.Equal(t, "dir x", h[1].Source)
	assert.False(t, h[1].First)
	assert.Same(t, h[1].Table(protocol.TypeCluster).Get("b"), h[0].Table(protocol.TypeCluster).Get("b"), "unchanged entries shared")
	assert.Equal(t, uint64(40), v.Table(scope, protocol.TypeCluster).Get("b").Revision)
	assert.Equal(t, 2*time.Second, connectTimeout(t, v, "a"))
	select {
	case <-w.C:
	case <-time.After(10 * time.Second):
		t.Fatal("watchers are signalled")
	}

	// Numbering continues; the next commit trims to K.
	assert.Equal(t, uint64(48), commit(t, st, timeout("a", 3)).Revision)
	assert.Len(t, st.View().History(scope), 1)
	_, err = st.RollbackTo(44, "")
	assert.Error(t, err)

	// A replay must start past the store's revision, and revisions must grow.
	_, err = st.Replay(60, []store.PastCommit{{Revision: 48}})
	assert.ErrorContains(t, err, "follows revision 48")
	_, err = st.Replay(60, []store.PastCommit{{Revision: 50}, {Revision: 49}})
	assert.Error(t, err)
	_, err = st.Replay(49, []store.PastCommit{{Revision: 50}})
	assert.Error(t, err)
	// A bad change refuses the whole replay.
	_, err = st.Replay(60, []store.PastCommit{{Revision: 50, Changes: []store.Change{store.SetEncoded(scope, protocol.TypeCluster, "a", []byte("\xff"))}}})
	assert.Error(t, err)
	assert.Equal(t, uint64(48), st.View().Revision())
}

// A table answers ChangedSince only about the revisions that led to it: a
// reader moving from a newer table to an older one compares contents.
func TestChangedSincePastTheTable(t *testing.T) {
	st := store.New()
	commit(t, st, timeout("a", 1))
	older := st.View().Table(scope, protocol.TypeCluster)
	commit(t, st, timeout("a", 2))
	newer := st.View().Table(scope, protocol.TypeCluster)
	_, ok := older.ChangedSince(newer.Revision())
	assert.False(t, ok)
	names, ok := newer.ChangedSince(older.Revision())
	assert.True(t, ok)
	assert.Equal(t, []string{"a"}, names)
}

// Readers of the history never lock and always see whole revisions while
// commits and rollbacks run (run with -race).
func TestHistoryConcurrentReaders(t *testing.T) {
	st := store.New(store.KeepHistory(3))
	first := commit(t, st, timeout("a", 1)).Revision
	rel, err := st.Hold(scope, first)
	require.NoError(t, err)
	defer rel()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := st.View()
				h := v.History(scope)
				if len(h) == 0 || h[0].Revision != v.Table(scope, protocol.TypeCluster).Revision() {
					t.Error("history[0] is not the view's content")
					return
				}
				if _, ok := v.ScopeAt(scope, first); !ok {
					t.Error("held revision not reachable")
					return
				}
				_ = v.Revisions()
			}
		}()
	}
	for i := range 200 {
		if i%10 == 9 {
			_, err := st.RollbackTo(first, "")
			require.NoError(t, err)
			continue
		}
		commit(t, st, timeout("a", i+2))
	}
	close(stop)
	wg.Wait()
}

func marshalCluster(c *clusterv3.Cluster) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(c)
}

func mustBody(t *testing.T, c *clusterv3.Cluster) []byte {
	t.Helper()
	b, err := marshalCluster(c)
	require.NoError(t, err)
	return b
}

func decodeCluster(t *testing.T, body []byte) *clusterv3.Cluster {
	t.Helper()
	var c clusterv3.Cluster
	require.NoError(t, proto.Unmarshal(body, &c))
	return &c
}
