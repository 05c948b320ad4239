package stream

import (
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

// fakeStream registers a stream of scope with no handler behind it: what
// wakes it stays on its watcher's channel for the test to see.
func fakeStream(s *Server, st *store.Store, id uint64, scope string, opened bool, status *machine.Status) *conn {
	c := &conn{srv: s, watcher: st.NewWatcher()}
	nodeID := fmt.Sprintf("node-%d", id)
	c.info = StreamInfo{ID: id, NodeID: nodeID, Scope: scope, Service: "ads", Node: &corev3.Node{Id: nodeID}}
	c.showInfo()
	c.opened.Store(opened)
	c.showStatus(status)
	s.streams[id] = c
	return c
}

func woken(c *conn) bool {
	select {
	case <-c.watcher.C:
		return true
	default:
		return false
	}
}

// Wake wakes the open streams of its scope, and only those.
func TestWakeScope(t *testing.T) {
	st := store.New()
	s := New(st, Options{})
	a := fakeStream(s, st, 1, "a", true, nil)
	b := fakeStream(s, st, 2, "b", true, nil)
	unopened := fakeStream(s, st, 3, "a", false, nil)

	s.Wake("a")
	assert.True(t, woken(a))
	assert.False(t, woken(b), "another scope's stream")
	assert.False(t, woken(unopened), "a stream that has not named its node reads nothing")

	s.Wake("")
	assert.True(t, woken(a))
	assert.True(t, woken(b))

	// Several scopes in one pass, by list and (past a few) by set.
	c := fakeStream(s, st, 4, "c", true, nil)
	s.Wake("a", "b")
	assert.True(t, woken(a))
	assert.True(t, woken(b))
	assert.False(t, woken(c))
	s.Wake("x1", "x2", "x3", "x4", "c", "x5")
	assert.False(t, woken(a))
	assert.True(t, woken(c))
	s.Wake()
	assert.True(t, woken(a))
	assert.True(t, woken(b))
	assert.True(t, woken(c))
}

// At the start of a wait, the streams behind the revision with nothing
// unanswered are woken: not those that read it already, nor those whose
// client owes an answer (its answer makes them read the store), nor those
// the selector leaves out.
func TestWakeBehind(t *testing.T) {
	st := store.New()
	_, err := st.Commit(store.Set("a", xdstest.Cluster("c")))
	require.NoError(t, err)
	at := func(v store.View, ack bool) *machine.Status {
		m := machine.NewSotW(machine.Config{Scope: "a", Node: &corev3.Node{Id: "x"}})
		_, err := m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster}, time.Time{}, v)
		require.NoError(t, err)
		rs := m.Responses(v)
		require.Len(t, rs, 1)
		if ack {
			_, err = m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster, VersionInfo: rs[0].Version, ResponseNonce: rs[0].Nonce}, time.Time{}, v)
			require.NoError(t, err)
		}
		return m.Status()
	}
	old := st.View()
	_, err = st.Commit(store.Set("b", xdstest.Cluster("c")))
	require.NoError(t, err)
	rev := st.View().Revision()

	s := New(st, Options{})
	behind := fakeStream(s, st, 1, "a", true, at(old, true))
	current := fakeStream(s, st, 2, "a", true, at(st.View(), true))
	unanswered := fakeStream(s, st, 3, "a", true, at(old, false))
	other := fakeStream(s, st, 4, "b", true, at(old, true))

	s.wakeBehind(rev, &Selector{Scope: "a"})
	assert.True(t, woken(behind))
	assert.False(t, woken(current), "read the revision already")
	assert.False(t, woken(unanswered), "its client's answer makes it read the store")
	assert.False(t, woken(other), "not selected")

	a := s.Applied(rev, Selector{Scope: "a"})
	assert.Equal(t, map[string]NodeState{"node-1": NodePending, "node-2": NodeACKed, "node-3": NodePending}, statesOf(a))
	assert.Equal(t, []uint64{old.Revision(), rev, 0}, []uint64{a.Nodes[0].Revision, a.Nodes[1].Revision, a.Nodes[2].Revision})
}

func statesOf(a Applied) map[string]NodeState {
	out := map[string]NodeState{}
	for _, n := range a.Nodes {
		out[n.NodeID] = n.State
	}
	return out
}

// The progress broadcast costs nothing while nobody waits, and closes the
// channel of each waiter on the next change.
func TestProgress(t *testing.T) {
	var p progress
	p.signal()
	assert.Nil(t, p.ch.Load(), "nobody waits: no channel made")

	p.waiters.Add(1)
	ch := p.changed()
	assert.Equal(t, ch, p.changed(), "one channel per change")
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	p.signal()
	_, open := <-ch
	assert.False(t, open)
	p.signal() // no channel: nothing to close twice
	next := p.changed()
	assert.NotEqual(t, ch, next)
	p.waiters.Add(-1)
	p.signal()
	select {
	case <-next:
		t.Fatal("signalled with nobody waiting")
	default:
	}
}

// BenchmarkApplied judges 10,000 nodes, one stream each, against a revision:
// what WaitFor does at most once per WaitInterval.
func BenchmarkApplied(b *testing.B) {
	st := store.New()
	if _, err := st.Commit(store.Set("a", xdstest.Cluster("c"))); err != nil {
		b.Fatal(err)
	}
	m := machine.NewSotW(machine.Config{Scope: "a", Node: &corev3.Node{Id: "x"}})
	if _, err := m.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster}, time.Time{}, st.View()); err != nil {
		b.Fatal(err)
	}
	m.Responses(st.View())
	s := New(st, Options{})
	for i := range 10_000 {
		fakeStream(s, st, uint64(i+1), "a", true, m.Status())
	}
	rev := st.View().Revision()
	b.ReportAllocs()
	for b.Loop() {
		if a := s.Applied(rev, Selector{Percent: 50}); len(a.Nodes) == 0 {
			b.Fatal("no nodes")
		}
	}
}
