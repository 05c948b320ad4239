package rollout

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// memShared is a Shared in memory over replicas whose stores number
// revisions alike (they commit the same content in the same order).
type memShared struct {
	mu       sync.Mutex
	state    []byte
	version  int64
	replicas []*Manager
	watchers []chan struct{}
}

func (s *memShared) Load(context.Context) ([]byte, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.version, nil
}

func (s *memShared) Save(_ context.Context, state []byte, version int64) (int64, bool, error) {
	s.mu.Lock()
	if version != s.version {
		s.mu.Unlock()
		return 0, false, nil
	}
	s.state, s.version = state, s.version+1
	v := s.version
	s.mu.Unlock()
	s.poke()
	return v, true, nil
}

// Changed signals on every change of the state, and every few milliseconds
// for the standing of the nodes, which the replicas do not report here.
func (s *memShared) Changed(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers = append(s.watchers, ch)
	s.mu.Unlock()
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

func (s *memShared) poke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *memShared) Applied(_ context.Context, id string) (stream.Applied, error) {
	s.mu.Lock()
	replicas := s.replicas
	s.mu.Unlock()
	var sum stream.Applied
	for _, m := range replicas {
		if st, ok := m.Status(); !ok || st.ID != id {
			continue
		}
		a, ok := m.Applied()
		if !ok {
			continue
		}
		sum.Revision = a.Revision
		sum.Nodes = append(sum.Nodes, a.Nodes...)
		sum.ACKed += a.ACKed
		sum.NACKed += a.NACKed
		sum.Pending += a.Pending
	}
	return sum, nil
}

// Two replicas over one shared state serve the same stage: the canary on
// replica B gets the change replica A staged, its NACK, counted from B, rolls
// it back on both, and the nodes outside the stage on either never saw it.
func TestSharedReplicasServeOneStage(t *testing.T) {
	sh := &memShared{}
	stA, stB := store.New(), store.New()
	for _, st := range []*store.Store{stA, stB} {
		_, err := st.Commit(clusters("edge", time.Second)...)
		require.NoError(t, err)
	}
	a := newEnv(t, stA, Options{Shared: sh})
	b := newEnv(t, stB, Options{Shared: sh})
	sh.mu.Lock()
	sh.replicas = []*Manager{a.m, b.m}
	sh.mu.Unlock()
	f := newFleet(2)
	onA := a.client(t, f.rest[0], false)
	onB := map[string]*client{}
	for _, id := range []string{f.canary, f.ten, f.rest[1]} {
		onB[id] = b.client(t, id, false)
	}
	base := onA.webVersion

	// Each replica stages the shared change to its own store: the rollout's
	// id is made from the target's revision, the same on both, and the
	// second to save adopts what the first saved.
	stages, _ := ParseStages("10%,100%")
	plan := Plan{Stages: stages, Window: time.Minute}
	rb := mustStage(t, b.m, plan, clusters("edge", 2*time.Second))
	r := mustStage(t, a.m, plan, clusters("edge", 2*time.Second))
	require.Equal(t, rb.Status().ID, r.Status().ID)
	target := a.webVersion()
	require.Equal(t, target, b.webVersion())

	onB[f.ten].expectWeb(target)
	onB[f.canary].receiveOnly(target)
	onB[f.canary].nack("rejected on B")

	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, RolledBack, got.Phase)
	assert.Contains(t, got.Events[len(got.Events)-1].Message, "rejected on B")
	onB[f.canary].expectWeb(base)
	onB[f.ten].expectWeb(base)
	final, err := rb.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, RolledBack, final.Phase)
	assert.Equal(t, got.ID, final.ID)
	assert.Equal(t, base, b.webVersion(), "B committed the base again")
	assert.Equal(t, base, a.webVersion())
	assert.Empty(t, a.sent.sentTo(target), "A's node outside the stage")
	assert.Equal(t, sorted(f.canary, f.ten), b.sent.sentTo(target))
}

// A Load that read the shared state before this Manager's own Save returned
// may be adopted after it (Run loads as it starts, while a Stage saves): the
// older state must not undo the newer, here by superseding the rollout just
// staged with "no rollout".
func TestSharedStaleLoadDoesNotUndoOwnSave(t *testing.T) {
	sh := &memShared{}
	st := store.New()
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	m := New(st, Options{Shared: sh, Logger: quiet()})
	stages, _ := ParseStages("10%,100%")
	r := mustStage(t, m, Plan{Stages: stages, Window: time.Minute}, clusters("edge", 2*time.Second))
	_, version, err := sh.Load(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(1), version, "Stage saved the state")

	m.mu.Lock()
	m.adoptLocked(nil, 0) // what a Load before the Save returned
	m.unlock()
	assert.Equal(t, Running, r.Status().Phase)
	got, ok := m.Status()
	require.True(t, ok)
	assert.Equal(t, r.Status().ID, got.ID)
}

// sharedPair is two Managers over one memShared with no Run: each test
// drives the loads itself, so the order of events is the test's.
func sharedPair(t *testing.T) (sh *memShared, a, b *Manager) {
	t.Helper()
	sh = &memShared{}
	for _, m := range []**Manager{&a, &b} {
		st := store.New()
		_, err := st.Commit(clusters("edge", time.Second)...)
		require.NoError(t, err)
		*m = New(st, Options{Shared: sh, Logger: quiet()})
	}
	return sh, a, b
}

func webOf(m *Manager) string {
	return m.st.View().Table("edge", protocol.TypeCluster).Get("web").Version
}

// A replica that loads the state of a rollout whose target its store does
// not hold yet does not adopt it (it would take the base for the target, and
// count its stage's nodes as ACKed): it adopts it once its own Stage has
// committed the change, as the same rollout.
func TestSharedStateWaitsForItsTarget(t *testing.T) {
	_, a, b := sharedPair(t)
	plan := Plan{Stages: mustStages(t, "10%,100%"), Window: time.Minute}
	rb := mustStage(t, b, plan, clusters("edge", 2*time.Second))

	a.loadShared(t.Context())
	_, ok := a.Status()
	assert.False(t, ok, "A's store does not hold the target yet")

	r := mustStage(t, a, plan, clusters("edge", 2*time.Second))
	got := r.Status()
	assert.Equal(t, rb.Status().ID, got.ID)
	assert.Equal(t, Running, got.Phase)
	assert.Equal(t, rb.Status().Target, got.Target)
	assert.Equal(t, 0, got.Stage)
	assert.Equal(t, webOf(b), webOf(a), "both hold the target")
}

// A rollout rolled back before a replica staged it: that replica's Stage
// adopts the rollback (the same rollout) and commits the base again, instead
// of starting the change over on every replica.
func TestSharedRollbackBeforeAReplicaStaged(t *testing.T) {
	sh, a, b := sharedPair(t)
	base := webOf(a)
	plan := Plan{Stages: mustStages(t, "10%,100%"), Window: time.Minute}
	rb := mustStage(t, b, plan, clusters("edge", 2*time.Second))
	require.NoError(t, b.Abort("bad"))
	require.Equal(t, RolledBack, rb.Status().Phase)
	require.Equal(t, base, webOf(b))
	a.loadShared(t.Context())

	r := mustStage(t, a, plan, clusters("edge", 2*time.Second))
	assert.Equal(t, rb.Status().ID, r.Status().ID)
	assert.Equal(t, RolledBack, r.Status().Phase)
	assert.Equal(t, base, webOf(a), "A committed the base again")
	data, _, err := sh.Load(t.Context())
	require.NoError(t, err)
	assert.Equal(t, RolledBack, stateOf(t, data).Rollout.Phase, "the shared state still says rolled back")
}

func mustStages(t *testing.T, s string) []Stage {
	t.Helper()
	stages, err := ParseStages(s)
	require.NoError(t, err)
	return stages
}

func stateOf(t *testing.T, data []byte) state {
	t.Helper()
	var s state
	require.NoError(t, json.Unmarshal(data, &s))
	require.NotNil(t, s.Rollout)
	return s
}

// A rollback another replica decides while this replica's Stage of another
// change runs is adopted then: this store gets the base again, so no node of
// it is served the rolled-back content, and the new change is staged over
// that base.
func TestSharedRollbackDuringOwnStage(t *testing.T) {
	_, a, b := sharedPair(t)
	base := webOf(a)
	plan := Plan{Stages: mustStages(t, "10%,100%"), Window: time.Minute}
	rb := mustStage(t, b, plan, clusters("edge", 2*time.Second))
	ra := mustStage(t, a, plan, clusters("edge", 2*time.Second))
	require.Equal(t, rb.Status().ID, ra.Status().ID)

	r3, err := a.Stage(t.Context(), plan, "another change", func() (store.Result, error) {
		require.NoError(t, b.Abort("canary NACKed")) // on B, meanwhile
		a.loadShared(t.Context())                    // A's Run loads it
		return a.st.Commit(clusters("other", 5*time.Second)...)
	})
	require.NoError(t, err)
	assert.Equal(t, RolledBack, ra.Status().Phase)
	assert.Equal(t, base, webOf(b))
	assert.Equal(t, base, webOf(a), "A committed the base again")
	require.NotNil(t, r3)
	assert.Equal(t, Running, r3.Status().Phase)
	assert.Contains(t, r3.Status().Scopes, "other")
}

// The shared state names the rollout a Stage is committing, further on than
// its first stage (the replica that staged it first passed a stage), while
// that commit runs: the Stage returns it as it stands, and saves nothing
// over it.
func TestSharedStageJoinsTheRolloutAsItStands(t *testing.T) {
	sh, a, b := sharedPair(t)
	plan := Plan{Stages: mustStages(t, "10%,100%"), Window: time.Minute}
	rb := mustStage(t, b, plan, clusters("edge", 2*time.Second))
	require.NoError(t, b.Promote("canary fine"))
	require.Equal(t, 1, rb.Status().Stage)
	_, version, err := sh.Load(t.Context())
	require.NoError(t, err)

	ra, err := a.Stage(t.Context(), plan, "test", func() (store.Result, error) {
		res, err := a.st.Commit(clusters("edge", 2*time.Second)...)
		a.loadShared(t.Context()) // A's Run loads it once the target is here
		return res, err
	})
	require.NoError(t, err)
	require.NotNil(t, ra)
	assert.Equal(t, rb.Status().ID, ra.Status().ID)
	assert.Equal(t, 1, ra.Status().Stage, "not started again")
	_, after, err := sh.Load(t.Context())
	require.NoError(t, err)
	assert.Equal(t, version, after, "nothing saved over the shared state")
}
