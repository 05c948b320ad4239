package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// A held stage still watches its nodes' NACKs: a node of the stage that
// NACKs the target while the rollout is Held rolls it back (MaxNACKs), rather
// than being served the rejected content until someone aborts.
func TestRunNACKWhileHeldRollsBack(t *testing.T) {
	st := edgeStore(t)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := e.clients(t, f, false)
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

// A rollout promoted while a superseding Stage's commit runs is not taken
// over: the new rollout's base is the promoted content, so the nodes that run
// it are not sent the content from before it again.
func TestStagePromotedDuringCommitKeepsPromotedContent(t *testing.T) {
	st := store.New()
	_, err := st.Commit(append(clusters("edge", time.Second), clusters("core", time.Second)...)...)
	require.NoError(t, err)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := memClients(t, mem, f, false)
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

// A rollout that creates a scope: a node of that scope (by its cluster) ran
// the default scope's content before the change. Connecting (or
// reconnecting) during the rollout while no stage selects it, its scope is
// resolved against the view it is served, the base, which has no such scope:
// it is served the default scope again, not the new scope's empty base.
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

// The canary NACKs the change after a commit to another type of the same
// scope (not made through Stage) restarted the rollout with a newer target.
// The response it rejects was made at the older target, but its content is
// the newer target's too (nothing new is sent, R6): the NACK stands against
// the newer target (R26) and the change is rolled back.
func TestRunNACKAcrossRestartRollsBack(t *testing.T) {
	st := edgeStore(t)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := e.clients(t, f, false)
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

// The big red button to a revision past a running rollout's base is
// refused: it would end the rollout and stop routing while the store holds
// untested content, which every node outside the canary would be sent. To
// the base itself, it rolls the change back.
func TestRollbackPastBaseRefused(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := memClients(t, mem, f, false)
	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
	target := r.Status().Target
	clients[f.canary].expectWeb(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)

	_, err := m.Rollback(target, "operator: rollback --to target")
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

// The canary is sent the change and goes away without answering (an Envoy
// that crashes on it does exactly this). The stage saw it: it is pending,
// not absent, so the window ends Held instead of taking the stage for an
// empty one, and the rest of the fleet never gets content no node ACKed. The
// node is kept in the state, so a restart does not forget it.
func TestRunCanaryThatVanishesDoesNotPromote(t *testing.T) {
	st := edgeStore(t)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := e.clients(t, f, false)
	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: 300 * time.Millisecond}, clusters("edge", 2*time.Second))
	target := e.webVersion()
	clients[f.canary].receiveOnly(target)
	clients[f.canary].sotw.Cancel() // crashed on it

	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	t.Logf("phase %s events %v", got.Phase, whats(got))
	require.Equal(t, []string{f.canary}, e.sent.sentTo(target), "only the canary may be sent untested content")
	require.Equal(t, Held, got.Phase)

	// The state keeps the node gone: a process restored from it holds the
	// stage for it too.
	data, err := e.m.MarshalState()
	require.NoError(t, err)
	var s state
	require.NoError(t, json.Unmarshal(data, &s))
	require.Equal(t, map[string]string{f.canary: "edge"}, s.Seen)
	m2 := New(st, Options{Logger: quiet()})
	require.NoError(t, m2.RestoreState(data))
	again, err := m2.MarshalState()
	require.NoError(t, err)
	var s2 state
	require.NoError(t, json.Unmarshal(again, &s2))
	require.Equal(t, s.Seen, s2.Seen)
	require.NoError(t, m2.Abort("test over"))
}

// The seen set is bounded: past maxSeen nodes, new ones are not remembered,
// and the ones remembered stay pending when gone.
func TestSeenIsBounded(t *testing.T) {
	j := &waitJob{seen: map[string]string{}}
	for i := range maxSeen {
		j.seen[fmt.Sprintf("n%d", i)] = "edge"
	}
	a := stream.Applied{Nodes: []stream.NodeApplied{{NodeID: "new", Scope: "edge", State: stream.NodeACKed}}, ACKed: 1}
	require.False(t, j.withGone(&a), "a full set takes no new node")
	require.Len(t, j.seen, maxSeen)
	require.Equal(t, maxSeen, a.Pending, "every node remembered and gone is pending")
	require.Equal(t, maxSeen, j.gone)

	// Ids are the clients': one too long is not remembered, whatever room is
	// left.
	j = &waitJob{seen: map[string]string{}}
	long := strings.Repeat("x", maxSeenName)
	a = stream.Applied{Nodes: []stream.NodeApplied{{NodeID: long, Scope: "edge", State: stream.NodeACKed}, {NodeID: "short", Scope: "edge", State: stream.NodeACKed}}, ACKed: 2}
	require.True(t, j.withGone(&a))
	require.Equal(t, map[string]string{"short": "edge"}, j.seen)
}

// A node of a scope that did not exist was served the default scope; a
// rollout creates its scope. When a stage reaches it, its stream ends with
// Unavailable, so that it reconnects and is served the new scope (here, the
// target); nodes the stage does not reach stay on the default scope until
// theirs does.
func TestStageReachingNewScopeReconnectsDefaultStreams(t *testing.T) {
	st := store.New()
	_, err := st.Commit(clusters(stream.DefaultScope, time.Second)...)
	require.NoError(t, err)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	canary := e.client(t, f.canary, false)
	rest := e.client(t, f.rest[0], false)
	ran := rest.webVersion

	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: time.Minute}, clusters("edge", 2*time.Second))
	target := e.webVersion()
	require.NotEqual(t, ran, target)
	err = canary.sotw.ExpectError(codes.Unavailable)
	require.ErrorContains(t, err, `now "edge"`)
	rest.expectNothing() // not reached: it keeps the default scope's content

	canary = e.client(t, f.canary, false) // reconnects: served edge's target
	require.Equal(t, target, canary.webVersion)

	// Its ACK starts the last stage, which reaches the rest.
	err = rest.sotw.ExpectError(codes.Unavailable)
	require.ErrorContains(t, err, `now "edge"`)
	rest = e.client(t, f.rest[0], false)
	require.Equal(t, target, rest.webVersion)
	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	require.Equal(t, Promoted, got.Phase, "events %v", whats(got))
}

// A Stage whose commit panics (and whose caller recovers, as net/http does
// for a handler) leaves no pending route: the nodes outside the first stage
// are not pinned to the view from before the commit, and later commits reach
// them.
func TestStagePanickingCommitLeavesNoPendingRoute(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	c := openClient(t, mem, f.rest[0], false)

	stages, _ := ParseStages("1%,100%")
	func() {
		defer func() { _ = recover() }()
		_, _ = m.Stage(t.Context(), Plan{Stages: stages}, "reload", func() (store.Result, error) { panic("loader bug") })
	}()
	_, err := st.Commit(clusters("edge", 7*time.Second)...) // a plain commit, no rollout
	require.NoError(t, err)
	c.expectWeb(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)
}

// The state says a Stage's commit is under way before the commit can be
// persisted (OnChange is called before it and after it). A snapshot taken
// between the commit and the state naming its rollout holds the commit with
// that state: restored from it, the change is rolled out again from its first
// stage, over the base from before the commit, rather than served to every
// node.
func TestRestoreDuringStageCommitStagesTheCommit(t *testing.T) {
	st := edgeStore(t)
	baseRev := st.View().Revision()
	var states [][]byte
	var m *Manager
	m = New(st, Options{Logger: quiet(), OnChange: func() {
		data, err := m.MarshalState()
		require.NoError(t, err)
		states = append(states, data)
	}})
	stages, _ := ParseStages("1%,100%")
	var during []byte // what a snapshot between the commit and the next OnChange carries
	_, err := m.Stage(t.Context(), Plan{Stages: stages}, "reload", func() (store.Result, error) {
		during = states[len(states)-1]
		return st.Commit(clusters("edge", 2*time.Second)...)
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(states), 2)
	var s state
	require.NoError(t, json.Unmarshal(during, &s))
	require.NotNil(t, s.Staging, "the state before the commit names it")
	require.Equal(t, baseRev, s.Staging.Base)
	var after state
	require.NoError(t, json.Unmarshal(states[len(states)-1], &after))
	require.Nil(t, after.Staging, "the state after the commit names its rollout instead")
	require.NotNil(t, after.Rollout)

	m2 := New(st, Options{Logger: quiet()})
	require.NoError(t, m2.RestoreState(during))
	got, ok := m2.Status()
	require.True(t, ok)
	require.Equal(t, Running, got.Phase)
	require.Equal(t, 0, got.Stage)
	require.Equal(t, baseRev, got.Base)
	require.Equal(t, st.View().Revision(), got.Target)
	require.Equal(t, []string{"edge"}, got.Scopes)
	mem := conv.NewMemory(st, stream.Options{Router: m2})
	f := newFleet(1)
	before := st.View()
	rest := openClient(t, mem, f.rest[0], false)
	base, ok := before.ScopeAt("edge", baseRev)
	require.True(t, ok)
	require.Equal(t, base.Table("edge", protocol.TypeCluster).Get("web").Version, rest.webVersion, "outside the first stage: the base")
	canary := openClient(t, mem, f.canary, false)
	require.Equal(t, before.Table("edge", protocol.TypeCluster).Get("web").Version, canary.webVersion)
	require.NoError(t, m2.Abort("test over"))
	require.NoError(t, m.Abort("test over"))
}

// NACK details kept in events (and the state) are bounded: each is cut to
// MaxDetail bytes, marked, and an event keeps MaxRejections of them.
func TestRejectionsAreBounded(t *testing.T) {
	long := strings.Repeat("é", MaxDetail) // 2 bytes each
	var rs []stream.Rejection
	for i := range MaxRejections + 5 {
		rs = append(rs, stream.Rejection{TypeURL: protocol.TypeCluster, Detail: fmt.Sprintf("%d %s", i, long)})
	}
	got := BoundRejections(rs)
	require.Len(t, got, MaxRejections)
	for _, r := range got {
		require.LessOrEqual(t, len(r.Detail), MaxDetail+len("… (9999 bytes cut)"))
		require.True(t, utf8.ValidString(r.Detail))
		require.Contains(t, r.Detail, "bytes cut)")
	}
	require.Equal(t, "short", BoundDetail("short"))
	require.Equal(t, len("0 ")+2*MaxDetail, len(rs[0].Detail), "the caller's rejections are not modified")
}

// View records the stage's nodes it serves the target, so a canary that
// crashes on the target before Run's first look at the stage is gone, not
// absent: the look after it left counts it pending. Peek (the fleet page)
// records nothing.
func TestServedCanaryIsSeenBeforeAnyLook(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := memClients(t, mem, f, false)
	stages, _ := ParseStages("1%,100%")
	mustStage(t, m, Plan{Stages: stages, Window: time.Minute}, clusters("edge", 2*time.Second))
	target := st.View().Table("edge", protocol.TypeCluster).Get("web").Version
	clients[f.canary].receiveOnly(target)
	clients[f.canary].sotw.Cancel() // crashed on it, before any look

	peeked := "peeked-0"
	for i := 1; stream.Bucket(peeked) >= 100; i++ {
		peeked = fmt.Sprintf("peeked-%d", i) // a node of the 1%, never connected
	}
	require.Equal(t, target, m.Peek("edge", node(peeked), st.View()).Table("edge", protocol.TypeCluster).Get("web").Version)
	j, a := lookWithNoNodeConnected(t, m)
	require.Equal(t, 1, j.gone)
	require.Len(t, a.Nodes, 1)
	require.Equal(t, f.canary, a.Nodes[0].NodeID)
	require.Equal(t, stream.NodePending, a.Nodes[0].State)
	require.NotContains(t, j.seen, peeked, "a peek is not a serve")
}

// The same for a canary served the change while Stage's commit runs (the
// first stage's nodes get it at once) and gone before Stage returns: the
// stage saw it. A node of another scope served then is not the stage's.
func TestCanaryServedDuringStageCommitIsSeen(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := memClients(t, mem, f, false)
	other := "core-0"
	for i := 1; stream.Bucket(other) >= 100; i++ {
		other = fmt.Sprintf("core-%d", i) // of the 1%, in scope core
	}
	stages, _ := ParseStages("1%,100%")
	r, err := m.Stage(t.Context(), Plan{Stages: stages, Window: time.Minute}, "test", func() (store.Result, error) {
		res, err := st.Commit(clusters("edge", 2*time.Second)...)
		clients[f.canary].receiveOnly(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)
		clients[f.canary].sotw.Cancel() // crashed on it
		m.View("core", node(other), st.View())
		return res, err
	})
	require.NoError(t, err)
	require.NotNil(t, r)

	j, a := lookWithNoNodeConnected(t, m)
	require.Equal(t, 1, j.gone)
	require.Equal(t, f.canary, a.Nodes[0].NodeID)
	require.NotContains(t, j.seen, other)
}

// lookWithNoNodeConnected is Run's look at the running stage of m when no
// node of it is connected: the job, and where its nodes stand.
func lookWithNoNodeConnected(t *testing.T, m *Manager) (*waitJob, stream.Applied) {
	t.Helper()
	m.mu.Lock()
	j := m.jobLocked(false)
	m.mu.Unlock()
	require.NotNil(t, j)
	a := stream.Applied{Revision: j.target}
	j.withGone(&a)
	return j, a
}
