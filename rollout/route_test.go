package rollout

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// The inlined bucket is stream.Bucket, and a compiled selector answers as
// Selector.Matches does, for ids, shares and every kind of metadata value.
func TestMatcherIsSelectorMatches(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{
		"team": "edge", "zone": map[string]any{"name": "eu-1"}, "weight": 2.5, "canary": true, "n": 10.0,
	})
	require.NoError(t, err)
	sels := []stream.Selector{
		{}, {Percent: 10}, {Percent: 1}, {Percent: 100}, {Scope: "edge"}, {Scope: "other"},
		{IDs: []string{"edge-3", "edge-7"}},
		{Metadata: map[string]string{"team": "edge"}}, {Metadata: map[string]string{"team": "core"}},
		{Metadata: map[string]string{"zone.name": "eu-1"}}, {Metadata: map[string]string{"zone.name.x": "eu-1"}},
		{Metadata: map[string]string{"weight": "2.5"}}, {Metadata: map[string]string{"n": "10"}},
		{Metadata: map[string]string{"canary": "true"}}, {Metadata: map[string]string{"missing": ""}},
		{Scope: "edge", Percent: 50, Metadata: map[string]string{"team": "edge"}},
	}
	for i := range 300 {
		id := "edge-" + string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune('A'+i/26%26))
		if i < 10 {
			id = "edge-" + string(rune('0'+i))
		}
		for _, n := range []*corev3.Node{{Id: id}, {Id: id, Metadata: md}} {
			for _, s := range sels {
				mt := compile(s)
				assert.Equal(t, s.Matches("edge", n), mt.matches("edge", n), "%s on %s", s.String(), id)
			}
		}
	}
}

// Membership of a stage costs no allocation: View runs on every read of the
// store by every stream.
func TestViewAllocatesNothing(t *testing.T) {
	m, st := stagedManager(t)
	md, _ := structpb.NewStruct(map[string]any{"team": "edge", "weight": 3.0})
	n := &corev3.Node{Id: "edge-42", Cluster: "edge", Metadata: md}
	cur := st.View()
	allocs := testing.AllocsPerRun(1000, func() { _ = m.View("edge", n, cur) })
	assert.Zero(t, allocs)
}

// stagedManager returns a Manager running a rollout of scope edge whose
// stages read shares, ids and metadata.
func stagedManager(t testing.TB) (*Manager, *store.Store) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	plan := Plan{Stages: []Stage{
		{Select: stream.Selector{IDs: []string{"a", "b", "c"}}},
		{Select: stream.Selector{Metadata: map[string]string{"team": "core", "weight": "3"}}},
		{Select: stream.Selector{Percent: 10}},
	}}
	_, err := m.Stage(t.Context(), plan, "bench", commitOf(st, clusters("edge", 2*time.Second)))
	require.NoError(t, err)
	m.mu.Lock()
	m.cur.serving = 2
	m.installLocked()
	m.mu.Unlock()
	return m, st
}

// BenchmarkView measures the router's decision, for a rollout whose stages
// read ids, metadata and a share: a node of the scope in no stage (the worst
// case: every matcher runs), one a stage selects (served the target and
// recorded as served, known after its first read), and one of a scope no
// rollout changes.
func BenchmarkView(b *testing.B) {
	m, st := stagedManager(b)
	md, _ := structpb.NewStruct(map[string]any{"team": "edge", "weight": 3.0})
	for _, c := range []struct {
		name, scope string
		node        *corev3.Node
	}{
		{"in-no-stage", "edge", &corev3.Node{Id: "edge-42", Cluster: "edge", Metadata: md}},
		{"served", "edge", &corev3.Node{Id: "a", Cluster: "edge"}},
		{"other-scope", "core", &corev3.Node{Id: "edge-42", Cluster: "core"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			cur := st.View()
			b.ReportAllocs()
			for b.Loop() {
				_ = m.View(c.scope, c.node, cur)
			}
		})
	}
}

// A staged change reaches the nodes of each stage only, in memory, where
// "nothing was sent" is exact: the 1% node first, then the 10% node, then
// every node; the others keep the base's exact version string until their
// stage. SotW and delta.
func TestStagesServeTheirNodesOnly(t *testing.T) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) {
			st := edgeStore(t)
			m := New(st, Options{Logger: quiet()})
			mem := conv.NewMemory(st, stream.Options{Router: m})
			f := newFleet(3)
			clients := memClients(t, mem, f, delta)
			base := clients[f.canary].webVersion
			for _, c := range clients {
				require.Equal(t, base, c.webVersion)
			}

			stages, err := ParseStages("1%,10%,100%")
			require.NoError(t, err)
			r := mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
			target := st.View().Table("edge", protocol.TypeCluster).Get("web").Version
			require.NotEqual(t, base, target)

			clients[f.canary].expectWeb(target)
			for _, id := range append([]string{f.ten}, f.rest...) {
				clients[id].expectNothing()
			}

			require.NoError(t, m.Promote("test"))
			assert.Equal(t, 1, r.Status().Stage)
			clients[f.ten].expectWeb(target)
			clients[f.canary].expectNothing()
			for _, id := range f.rest {
				clients[id].expectNothing()
			}

			require.NoError(t, m.Promote("test"))
			for _, id := range f.rest {
				clients[id].expectWeb(target)
			}
			require.NoError(t, m.Promote("test"))
			got := r.Status()
			assert.Equal(t, Promoted, got.Phase)
			assert.Equal(t, []string{"started", "promote", "stage", "promote", "stage", "promote", "promoted"}, whats(got))
			assert.Nil(t, m.routes.Load(), "a promoted rollout routes nothing")
			assert.ErrorIs(t, m.Promote("again"), ErrNoRollout)
		})
	}
}

// Abort puts every node of the scope back on the base: the nodes that were
// sent the target get the base's exact version strings again, the others
// are sent nothing, and the store holds the base's content again.
func TestAbortPutsTheBaseBack(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			st := edgeStore(t)
			before := st.View().Table("edge", protocol.TypeCluster)
			m := New(st, Options{Logger: quiet()})
			mem := conv.NewMemory(st, stream.Options{Router: m})
			f := newFleet(2)
			clients := memClients(t, mem, f, delta)
			base := clients[f.canary].webVersion
			baseSet := clients[f.canary].setVersion

			r := mustStage(t, m, Plan{Stages: []Stage{{Select: stream.Selector{Percent: 10}}}}, clusters("edge", 3*time.Second))
			target := st.View().Table("edge", protocol.TypeCluster).Get("web").Version
			clients[f.canary].expectWeb(target)
			clients[f.ten].expectWeb(target)

			require.NoError(t, m.Abort("bad change"))
			got := r.Status()
			assert.Equal(t, RolledBack, got.Phase)
			clients[f.canary].expectWeb(base)
			clients[f.ten].expectWeb(base)
			assert.Equal(t, baseSet, clients[f.canary].setVersion, "the base's exact version string")
			for _, id := range f.rest {
				clients[id].expectNothing()
			}
			after := st.View().Table("edge", protocol.TypeCluster)
			assert.Equal(t, before.Digest(), after.Digest())
			assert.Equal(t, before.Get("web").Version, after.Get("web").Version)
			assert.Nil(t, m.routes.Load())
			assert.ErrorIs(t, m.Abort("again"), ErrNoRollout)
		})
	}
}

// A commit to a scope under rollout that was not made through Stage is
// untested: at once, only the first stage's nodes are served it.
func TestCommitOutsideTheRolloutGoesToTheFirstStage(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := memClients(t, mem, f, false)
	base := clients[f.canary].webVersion
	stages, _ := ParseStages("1%,10%")
	mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
	require.NoError(t, m.Promote("test")) // the 10% node runs the target
	target := st.View().Table("edge", protocol.TypeCluster).Get("web").Version
	clients[f.canary].expectWeb(target)
	clients[f.ten].expectWeb(target)

	_, err := st.Commit(clusters("edge", 9*time.Second)...)
	require.NoError(t, err)
	untested := st.View().Table("edge", protocol.TypeCluster).Get("web").Version
	clients[f.canary].expectWeb(untested)
	clients[f.ten].expectWeb(base) // back to the base: its stage has not tested this
	clients[f.rest[0]].expectNothing()
}

// A Stage while a rollout runs supersedes it: the older ends Superseded, the
// newer starts at its first stage over the older's base and scopes.
func TestStageSupersedes(t *testing.T) {
	st := store.New()
	_, err := st.Commit(append(clusters("edge", time.Second), clusters("core", time.Second)...)...)
	require.NoError(t, err)
	baseRev := st.View().Revision()
	m := New(st, Options{Logger: quiet()})
	mem := conv.NewMemory(st, stream.Options{Router: m})
	f := newFleet(1)
	clients := memClients(t, mem, f, false)
	base := clients[f.canary].webVersion
	stages, _ := ParseStages("1%,10%")
	first := mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
	require.NoError(t, m.Promote("test"))
	clients[f.ten].expectWeb(st.View().Table("edge", protocol.TypeCluster).Get("web").Version)

	second := mustStage(t, m, Plan{Stages: stages}, append(clusters("edge", 5*time.Second), clusters("core", 5*time.Second)...))
	old := first.Status()
	assert.Equal(t, Superseded, old.Phase)
	assert.Equal(t, "superseded", old.Events[len(old.Events)-1].What)
	now := second.Status()
	assert.Equal(t, Running, now.Phase)
	assert.Equal(t, 0, now.Stage)
	assert.Equal(t, baseRev, now.Base, "the older rollout's base")
	assert.Equal(t, []string{"core", "edge"}, now.Scopes)
	newest := st.View().Table("edge", protocol.TypeCluster).Get("web").Version
	clients[f.canary].expectWeb(newest)
	clients[f.ten].expectWeb(base)
	clients[f.rest[0]].expectNothing()

	// Nothing changed: no rollout, and the running one goes on.
	r, err := m.Stage(t.Context(), Plan{Stages: stages}, "same", commitOf(st, append(clusters("edge", 5*time.Second), clusters("core", 5*time.Second)...)))
	require.NoError(t, err)
	assert.Nil(t, r)
	assert.Equal(t, Running, second.Status().Phase)
}

// client is a node's stream that ACKs every response and remembers the
// version of cluster web it holds.
type client struct {
	t          *testing.T
	sotw       *conv.SotW
	delta      *conv.Delta
	webVersion string
	// setVersion is the SotW response's version_info (the set's digest).
	setVersion string
	// sent, when set, is the server's log of what it sent, which records a
	// response after handing it to the transport: each response received
	// waits until the log has it, so that what a test reads of the log
	// after a receive includes it.
	sent *sentLog
	id   string
}

// received waits until the sent log, if any, has the version of web just
// received.
func (c *client) received() {
	c.t.Helper()
	if c.sent != nil {
		c.sent.await(c.t, c.id, c.webVersion)
	}
}

func openClient(t *testing.T, mem *conv.Memory, id string, delta bool) *client {
	c := &client{t: t}
	if delta {
		c.delta = mem.DeltaADS(t, node(id))
		c.delta.Subscribe(protocol.TypeCluster)
	} else {
		c.sotw = mem.ADS(t, node(id))
		c.sotw.Request(protocol.TypeCluster)
	}
	c.receive()
	return c
}

func (c *client) receive() {
	c.t.Helper()
	if c.delta != nil {
		r := c.delta.ExpectResponse()
		c.webVersion = r.VersionOf("web")
		c.setVersion = r.GetSystemVersionInfo()
		c.received()
		c.delta.ACK()
		return
	}
	r := c.sotw.ExpectResponse()
	c.setVersion = r.Version()
	c.webVersion = protocol.ContentVersion(mustBody(c.t, r, "web"))
	c.received()
	c.sotw.ACK()
}

func (c *client) expectWeb(version string) {
	c.t.Helper()
	c.receive()
	assert.Equal(c.t, version, c.webVersion)
}

// receiveOnly receives a response carrying version of web and does not
// answer it yet.
func (c *client) receiveOnly(version string) {
	c.t.Helper()
	if c.delta != nil {
		r := c.delta.ExpectResponse()
		c.webVersion, c.setVersion = r.VersionOf("web"), r.GetSystemVersionInfo()
	} else {
		r := c.sotw.ExpectResponse()
		c.setVersion = r.Version()
		c.webVersion = protocol.ContentVersion(mustBody(c.t, r, "web"))
	}
	c.received()
	assert.Equal(c.t, version, c.webVersion)
}

func (c *client) ack() {
	if c.delta != nil {
		c.delta.ACK()
	} else {
		c.sotw.ACK()
	}
}

func (c *client) nack(msg string) {
	if c.delta != nil {
		c.delta.NACK(msg)
	} else {
		c.sotw.NACK(msg)
	}
}

func (c *client) expectNothing() {
	c.t.Helper()
	if c.delta != nil {
		c.delta.ExpectNothing()
	} else {
		c.sotw.ExpectNothing()
	}
}

// A node that reconnects mid-rollout is served the view of its stage: the
// target when its stage was reached, the base otherwise.
func TestReconnectGetsItsStage(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			st := edgeStore(t)
			m := New(st, Options{Logger: quiet()})
			mem := conv.NewMemory(st, stream.Options{Router: m})
			f := newFleet(1)
			base := openClient(t, mem, f.rest[0], delta).webVersion
			stages, _ := ParseStages("1%,10%,100%")
			mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
			require.NoError(t, m.Promote("test"))
			target := st.View().Table("edge", protocol.TypeCluster).Get("web").Version

			assert.Equal(t, target, openClient(t, mem, f.canary, delta).webVersion)
			assert.Equal(t, target, openClient(t, mem, f.ten, delta).webVersion)
			assert.Equal(t, base, openClient(t, mem, f.rest[0], delta).webVersion)
		})
	}
}

// Run restarts a rollout at its first stage, same base, when a commit not
// made through Stage changes one of its scopes.
func TestRunRestartsOnACommitOutsideTheRollout(t *testing.T) {
	st := edgeStore(t)
	baseRev := st.View().Revision()
	m := New(st, Options{Logger: quiet()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	stages, _ := ParseStages("1%,10%,100%")
	r := mustStage(t, m, Plan{Stages: stages, Window: time.Hour}, clusters("edge", 2*time.Second))
	require.NoError(t, m.Promote("test"))
	res, err := st.Commit(clusters("edge", 7*time.Second)...)
	require.NoError(t, err)
	got := waitStatus(t, m, func(s Status) bool { return s.Target == res.Revision })
	assert.Equal(t, 0, got.Stage)
	assert.Equal(t, Running, got.Phase)
	assert.Equal(t, baseRev, got.Base)
	assert.Equal(t, "restart", got.Events[len(got.Events)-1].What)
	assert.Equal(t, r.Status().ID, got.ID)

	// A commit to another scope changes nothing of the rollout.
	_, err = st.Commit(clusters("core", time.Second)...)
	require.NoError(t, err)
	_, err = st.Commit(clusters("edge", 7*time.Second)...) // unchanged: no revision
	require.NoError(t, err)
	m.mu.Lock()
	m.checkCommitsLocked() // what Run does when the store signals
	m.unlock()
	assert.Equal(t, res.Revision, r.Status().Target)
	assert.Equal(t, "restart", whats(r.Status())[len(r.Status().Events)-1])
}

// BenchmarkViewAfterOtherCommits is BenchmarkView once another scope was
// committed to: the router then checks the scope's tables for content past
// the target.
func BenchmarkViewAfterOtherCommits(b *testing.B) {
	m, st := stagedManager(b)
	_, err := st.Commit(clusters("core", time.Second)...)
	require.NoError(b, err)
	md, _ := structpb.NewStruct(map[string]any{"team": "edge", "weight": 3.0})
	n := &corev3.Node{Id: "edge-42", Cluster: "edge", Metadata: md}
	cur := st.View()
	b.ReportAllocs()
	for b.Loop() {
		_ = m.View("edge", n, cur)
	}
}
