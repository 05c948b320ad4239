package rollout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// REVIEW 1: a node of a Held stage NACKs the target: nothing rolls back; the
// stage's nodes keep being served the rejected content indefinitely.
func TestRunNACKWhileHeldRollsBack(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := map[string]*client{}
	for _, id := range f.all() {
		clients[id] = e.client(t, id, false)
	}
	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: 200 * time.Millisecond}, clusters("edge", 2*time.Second))
	target := e.webVersion()
	clients[f.canary].receiveOnly(target) // slow to answer
	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	require.Equal(t, Held, got.Phase)

	clients[f.canary].nack("unsupported lb policy")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	for {
		s := r.Status()
		if s.Phase == RolledBack {
			return
		}
		select {
		case <-ctx.Done():
			a, _ := e.m.Applied()
			t.Fatalf("canary NACKed the target while Held: phase still %s, applied %+v", s.Phase, a)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// REVIEW 2: the old rollout is promoted while a superseding Stage's commit
// runs; the new rollout still takes the old rollout's base, so nodes that run
// the promoted content are served the content from before it again.
func TestStagePromotedDuringCommitKeepsPromotedContent(t *testing.T) {
	st := store.New()
	_, err := st.Commit(append(clusters("edge", time.Second), clusters("core", time.Second)...)...)
	require.NoError(t, err)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := map[string]*client{}
	for _, id := range f.all() {
		clients[id] = openClient(t, mem, id, false)
	}
	base := clients[f.ten].webVersion
	stages, _ := ParseStages("1%,100%")
	first := mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
	require.NoError(t, m.Promote("stage 2"))
	promoted := st.View().Table("edge", protocol.TypeCluster).Get("web").Version
	clients[f.canary].expectWeb(promoted)
	clients[f.ten].expectWeb(promoted)
	clients[f.rest[0]].expectWeb(promoted)

	// Run decides "every stage ACKed" while the next Stage's commit (of
	// another scope) runs.
	_, err = m.Stage(t.Context(), Plan{Stages: stages}, "core change", func() (store.Result, error) {
		require.NoError(t, m.Promote("all ACKed"))
		return st.Commit(clusters("core", 5*time.Second)...)
	})
	require.NoError(t, err)
	require.Equal(t, Promoted, first.Status().Phase)
	// edge was fully promoted and the new change does not touch it: its nodes
	// must stay on the promoted content.
	// It runs the promoted content already: nothing is sent to it (R6).
	clients[f.ten].expectNothing()
	require.NotEqual(t, base, clients[f.ten].webVersion, "a node that ran the promoted content is sent the content from before it")
	require.Equal(t, promoted, clients[f.ten].webVersion)
}

// REVIEW 3: a rollout that creates a scope. A node of that scope (by its
// cluster) ran the default scope's content before the change; connecting
// (or reconnecting) during the rollout while no stage selects it, it is
// resolved to the new scope against the store's newest view, and the Router
// serves it that scope's base: nothing. It loses every cluster.
func TestNewScopeOutsideStageKeepsWhatItRan(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters(stream.DefaultScope, time.Second)...)
	require.NoError(t, err)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	before := openClient(t, mem, f.rest[0], false) // cluster "edge": served scope default
	ran := before.webVersion

	stages, _ := ParseStages("1%,100%")
	mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))

	// The same node reconnects (or a new one of its kind starts) mid-rollout.
	c := mem.ADS(t, node(f.rest[0]))
	c.Request(protocol.TypeCluster)
	r := c.ExpectResponse()
	require.NotEmpty(t, r.GetResources(), "a node outside the stage was served an empty CDS set (the new scope's base)")
	require.Equal(t, ran, protocol.ContentVersion(mustBody(t, r, "web")))
}

// REVIEW 4: the canary NACKs the change, but the response it rejects was made
// at the target before a commit to another type of the same scope (not made
// through Stage) restarted the rollout with a newer target. The rejected
// content is still the target's, yet the NACK is not counted against it and
// no new response is sent (R6): the stage never decides, the window holds it
// and the canary keeps being served the content it rejected.
func TestRunNACKAcrossRestartRollsBack(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := map[string]*client{}
	for _, id := range f.all() {
		clients[id] = e.client(t, id, false)
	}
	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: 500 * time.Millisecond}, clusters("edge", 2*time.Second))
	target := e.webVersion()
	clients[f.canary].receiveOnly(target)

	res, err := st.Commit(store.Set("edge", xdstest.Endpoints("web", "10.0.0.1:80")))
	require.NoError(t, err)
	waitStatus(t, e.m, func(s Status) bool { return s.Target == res.Revision })
	clients[f.canary].nack("unsupported lb policy") // of the CDS content, still the target's

	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	require.Equal(t, RolledBack, got.Phase, "events %v applied %+v", whats(got), got.Applied)
}

// REVIEW 5: the big red button to a revision at or past a running rollout's
// target ends the rollout (RolledBack) and stops routing, but the store still
// holds the untested target: every node outside the canary is sent it.
func TestRollbackPastBaseRefused(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := map[string]*client{}
	for _, id := range f.all() {
		clients[id] = openClient(t, mem, id, false)
	}
	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
	target := r.Status().Target
	clients[f.canary].expectWeb(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)

	_, err = m.Rollback(target, "operator: rollback --to target")
	require.ErrorContains(t, err, fmt.Sprintf("running from base %d: abort it, or roll back to %d or earlier", r.Status().Base, r.Status().Base))
	require.Equal(t, Running, r.Status().Phase, "a refused rollback leaves the rollout as it was")
	require.Equal(t, target, st.View().Revision(), "a refused rollback commits nothing")
	clients[f.rest[0]].expectNothing() // the untested change must not reach the rest

	// To the base itself, it ends the rollout and puts the base back.
	_, err = m.Rollback(r.Status().Base, "operator: rollback --to base")
	require.NoError(t, err)
	require.Equal(t, RolledBack, r.Status().Phase)
	clients[f.canary].expectWeb(clients[f.rest[0]].webVersion)
}

// REVIEW 6: the canary is sent the change and goes away without answering
// (an Envoy that crashes on it does exactly this). At the window's end the
// stage has no connected node, is judged "empty", and the change goes on to
// the next stage: the rest of the fleet gets content no node ever ACKed.
func TestRunCanaryThatVanishesDoesNotPromote(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := map[string]*client{}
	for _, id := range f.all() {
		clients[id] = e.client(t, id, false)
	}
	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: 300 * time.Millisecond}, clusters("edge", 2*time.Second))
	target := e.webVersion()
	clients[f.canary].receiveOnly(target)
	clients[f.canary].sotw.Cancel() // crashed on it

	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	t.Logf("phase %s events %v", got.Phase, whats(got))
	require.Equal(t, []string{f.canary}, e.sent.sentTo(target), "only the canary may be sent untested content")
}

// REVIEW 7: a Stage whose commit panics (and whose caller recovers, as
// net/http does for a handler) leaves the pending route installed for good:
// every node outside the first stage, of every scope, is pinned to the view
// from before the commit, and later commits never reach them.
func TestStagePanickingCommitLeavesNoPendingRoute(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	c := openClient(t, mem, f.rest[0], false)

	stages, _ := ParseStages("1%,100%")
	func() {
		defer func() { _ = recover() }()
		_, _ = m.Stage(t.Context(), Plan{Stages: stages}, "reload", func() (store.Result, error) { panic("loader bug") })
	}()
	_, err = st.Commit(clusters("edge", 7*time.Second)...) // a plain commit, no rollout
	require.NoError(t, err)
	c.expectWeb(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)
}
