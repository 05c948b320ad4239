package rollout

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// A restarted process restores the rollout where it was: a snapshot carries
// the store's content, its history and the Manager's state; a new store and
// Manager restored from it are at the same stage, base and target; the
// nodes are served their stage's view as they reconnect, and the rollout
// goes on to the next stages. The store keeps the base in its history
// (Hold) though it keeps two revisions per scope and three followed.
func TestRestoreContinuesTheRollout(t *testing.T) {
	variants(t, func(t *testing.T, delta bool) {
		st := store.New(store.KeepHistory(2))
		_, err := st.Commit(clusters("edge", time.Second)...)
		require.NoError(t, err)
		baseRev := st.View().Revision()
		f := newFleet(1)

		before := newEnv(t, st, Options{})
		c := map[string]*client{}
		for _, id := range f.all() {
			c[id] = before.client(t, id, delta)
		}
		base := c[f.rest[0]].webVersion
		stages, _ := ParseStages("1%,10%,100%")
		mustStage(t, before.m, Plan{Stages: stages, Window: time.Minute}, clusters("edge", 2*time.Second))
		c[f.canary].expectWeb(before.webVersion())
		c[f.ten].expectWeb(before.webVersion())
		// Untested content restarts the rollout, same base: the base is now
		// older than the two revisions the scope keeps.
		res, err := st.Commit(clusters("edge", 4*time.Second)...)
		require.NoError(t, err)
		target := before.webVersion()
		c[f.canary].receiveOnly(target)
		c[f.ten].expectWeb(base) // back to stage 1 alone
		c[f.canary].ack()
		c[f.ten].receiveOnly(target) // and does not answer: stage 2 waits
		waitStatus(t, before.m, func(s Status) bool { return s.Target == res.Revision && s.Stage == 1 })
		require.Len(t, st.View().History("edge"), 3, "the newest two and the held base")

		data, err := before.m.MarshalState()
		require.NoError(t, err)
		var saved state
		require.NoError(t, json.Unmarshal(data, &saved))
		assert.Equal(t, stateVersion, saved.Version)
		assert.Equal(t, map[string]uint64{"edge": baseRev}, saved.Bases)

		// The snapshot, and the restarted process: a new store restored from
		// it, a new Manager and server.
		b, err := persist.Open(t.Context(), filepath.Join(t.TempDir(), "snapshot.bin"), persist.BackendOptions{})
		require.NoError(t, err)
		snap, _ := persist.Encode(st.View(), persist.Meta{Attachments: map[string][]byte{"rollout": data}})
		require.NoError(t, b.Write(t.Context(), snap))
		restored := store.New(store.KeepHistory(2))
		info, err := persist.Restore(t.Context(), b, restored)
		require.NoError(t, err)
		require.Equal(t, st.View().Revision(), restored.View().Revision(), "the numbering goes on")
		after := newEnv(t, restored, Options{})
		require.NoError(t, after.m.RestoreState(info.Attachments["rollout"]))
		st = restored
		got, ok := after.m.Status()
		require.True(t, ok)
		assert.Equal(t, saved.Rollout.ID, got.ID)
		assert.Equal(t, Running, got.Phase)
		assert.Equal(t, 1, got.Stage)
		assert.Equal(t, baseRev, got.Base)
		assert.Equal(t, res.Revision, got.Target)
		assert.Equal(t, "restored", got.Events[len(got.Events)-1].What)

		// The node outside the stage first: with no node of the stage
		// connected, the stage cannot pass.
		n := map[string]*client{}
		n[f.rest[0]] = after.client(t, f.rest[0], delta)
		assert.Equal(t, base, n[f.rest[0]].webVersion, "the base's exact version")
		n[f.ten] = after.client(t, f.ten, delta)
		assert.Equal(t, target, n[f.ten].webVersion)
		n[f.canary] = after.client(t, f.canary, delta)
		assert.Equal(t, target, n[f.canary].webVersion)
		n[f.rest[0]].expectWeb(target) // stage 1 and 2 ACKed: every node
		final := waitStatus(t, after.m, func(s Status) bool { return s.Phase == Promoted })
		assert.Equal(t, "promoted", final.Events[len(final.Events)-1].What)
	})
}

// The state of no rollout, and of one that ended, restores as it was.
func TestRestoreEndedOrNone(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	data, err := m.MarshalState()
	require.NoError(t, err)
	assert.JSONEq(t, `{"version":1}`, string(data))
	require.NoError(t, New(st, Options{}).RestoreState(data))

	mustStage(t, m, Plan{}, clusters("edge", 2*time.Second))
	require.NoError(t, m.Abort("no"))
	data, err = m.MarshalState()
	require.NoError(t, err)
	m2 := New(st, Options{Logger: quiet()})
	require.NoError(t, m2.RestoreState(data))
	got, ok := m2.Status()
	require.True(t, ok)
	assert.Equal(t, RolledBack, got.Phase)
	assert.Nil(t, m2.routes.Load())
	assert.Equal(t, st.View().Table("edge", protocol.TypeCluster).Get("web").Version,
		m2.View("edge", node("x"), st.View()).Table("edge", protocol.TypeCluster).Get("web").Version)

	assert.ErrorContains(t, m2.RestoreState([]byte(`{"version":7}`)), "version 7")
	assert.ErrorContains(t, m2.RestoreState([]byte(`{`)), "restore rollout state")
}

// A running rollout whose base the store's history no longer holds cannot
// be restored: the error names the scope and the revision. (With one
// revision kept per scope, the base is gone once the Stage commits.)
func TestRestoreNeedsTheBaseInHistory(t *testing.T) {
	st := store.New(store.KeepHistory(1))
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	m := New(st, Options{Logger: quiet()})
	mustStage(t, m, Plan{}, clusters("edge", 2*time.Second))
	data, err := m.MarshalState()
	require.NoError(t, err)
	err = New(st, Options{Logger: quiet()}).RestoreState(data)
	assert.ErrorContains(t, err, `the store's history of scope "edge" does not reach its base, revision 1`)
}

// The big red button: Rollback ends a running rollout and puts the revision
// back on every node with its exact version strings; without a rollout, 0
// means the revision before the newest.
func TestRollback(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	c := map[string]*client{}
	for _, id := range f.all() {
		c[id] = openClient(t, mem, id, false)
	}
	base, baseSet := c[f.canary].webVersion, c[f.canary].setVersion
	baseRev := st.View().Revision()

	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
	c[f.canary].expectWeb(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)
	res, err := m.Rollback(0, "red button")
	require.NoError(t, err)
	assert.True(t, res.Changed())
	got := r.Status()
	assert.Equal(t, RolledBack, got.Phase)
	assert.Equal(t, "rollback", got.Events[len(got.Events)-1].What)
	assert.Contains(t, got.Events[len(got.Events)-1].Message, fmt.Sprintf("rolled back to revision %d (red button)", baseRev))
	c[f.canary].expectWeb(base)
	assert.Equal(t, baseSet, c[f.canary].setVersion)
	c[f.ten].expectNothing()
	assert.Equal(t, "red button", st.View().History("edge")[0].Source)
	assert.Nil(t, m.routes.Load())

	// No rollout: back to the revision before the newest (the first
	// rollback's, which holds the base's content).
	_, err = st.Commit(clusters("edge", 5*time.Second)...)
	require.NoError(t, err)
	for _, id := range f.all() {
		c[id].expectWeb(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)
	}
	_, err = m.Rollback(0, "")
	require.NoError(t, err)
	for _, id := range f.all() {
		c[id].expectWeb(base)
	}
	_, err = m.Rollback(1_000, "")
	assert.Error(t, err)
}

// A rollback of a rollout puts back its scopes alone: a commit to another
// scope meanwhile stands.
func TestRollbackKeepsOtherScopes(t *testing.T) {
	for _, other := range []bool{false, true} {
		st := store.New()
		_, err := st.Commit(append(clusters("edge", time.Second), clusters("core", time.Second)...)...)
		require.NoError(t, err)
		before := st.View()
		m := New(st, Options{Logger: quiet()})
		mustStage(t, m, Plan{}, clusters("edge", 2*time.Second))
		if other {
			_, err = st.Commit(clusters("core", 3*time.Second)...)
			require.NoError(t, err)
		}
		coreNow := st.View().Table("core", protocol.TypeCluster)
		require.NoError(t, m.Abort("no"))
		v := st.View()
		assert.Equal(t, before.Table("edge", protocol.TypeCluster).Digest(), v.Table("edge", protocol.TypeCluster).Digest())
		assert.Same(t, coreNow, v.Table("core", protocol.TypeCluster), "core as it was before the rollback")
		assert.Equal(t, "rollback of rollout r2: aborted: no", v.History("edge")[0].Source)
	}
}
