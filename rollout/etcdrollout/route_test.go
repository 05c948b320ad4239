package etcdrollout

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// fakeStreams records the wakes and answers Applied with what a test sets.
type fakeStreams struct {
	mu    sync.Mutex
	woken []string
	nodes map[string]stream.NodeApplied
	asked []stream.Selector
}

func (f *fakeStreams) Applied(rev uint64, sel stream.Selector) stream.Applied {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, sel)
	a := stream.Applied{Revision: rev}
	for _, n := range f.nodes {
		if sel.Matches(n.Scope, &corev3.Node{Id: n.NodeID}) {
			a.Nodes = append(a.Nodes, n)
		}
	}
	return a
}

func (f *fakeStreams) Wake(scopes ...string) {
	f.mu.Lock()
	f.woken = append(f.woken, scopes...)
	f.mu.Unlock()
}

func (f *fakeStreams) takeWoken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.woken
	f.woken = nil
	slices.Sort(w)
	return w
}

func webTimeout(v store.View, scope string) time.Duration {
	e := v.Table(scope, protocol.TypeCluster).Get("web")
	if e == nil {
		return 0
	}
	var c clusterv3.Cluster
	if err := proto.Unmarshal(e.Body, &c); err != nil {
		return -1
	}
	return c.GetConnectTimeout().AsDuration()
}

func commitWeb(t *testing.T, st *store.Store, scope string, d time.Duration) {
	t.Helper()
	_, err := st.Commit(store.Set(scope, &clusterv3.Cluster{Name: "web", ConnectTimeout: durationpb.New(d)}))
	require.NoError(t, err)
}

func etcdState(t *testing.T, s State, modRev int64) source.EtcdRollout {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	r, err := source.ParseEtcdRollout(b, modRev)
	require.NoError(t, err)
	return r
}

// The routing of one replica through a rollout's life, as the source and
// the watch of the state drive it: the stage's nodes of the scopes the target
// changes are served the target, the others the base; a rollback keeps
// routing until the base is committed; a promotion stops routing.
func TestRouting(t *testing.T) {
	st := store.New()
	commitWeb(t, st, "edge", time.Second)
	commitWeb(t, st, "other", time.Second)
	r := New(Options{})
	fs := &fakeStreams{}
	r.Attach(fs)
	canary, rest := &corev3.Node{Id: "canary"}, &corev3.Node{Id: "rest"}
	served := func(scope string, n *corev3.Node) time.Duration {
		return webTimeout(r.View(scope, n, st.View()), scope)
	}

	assert.Equal(t, time.Second, served("edge", rest), "no rollout: current")
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{IDs: []string{"canary"}}}}}.Normalized()
	require.NoError(t, err)
	s0 := State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running}

	// The source commits the target over the base.
	base := st.View()
	r.Committing(etcdState(t, s0, 10), base)
	v, ok := r.Base(1)
	assert.True(t, ok)
	assert.Equal(t, base.Revision(), v.Revision())
	commitWeb(t, st, "edge", 2*time.Second)
	r.Committed(etcdState(t, s0, 10), "2", st.View())
	assert.Equal(t, []string{""}, fs.takeWoken()[:1], "Committing wakes every scope: the changed ones are not known yet")

	assert.Equal(t, 2*time.Second, served("edge", canary))
	assert.Equal(t, time.Second, served("edge", rest))
	assert.Equal(t, time.Second, served("other", rest), "a scope the target does not change is served current")
	assert.Same(t, st.View().Table("other", protocol.TypeCluster), r.View("other", rest, st.View()).Table("other", protocol.TypeCluster))

	// The standing of the stage's nodes, against the target's revision.
	fs.nodes = map[string]stream.NodeApplied{
		"canary": {NodeID: "canary", Scope: "edge", State: stream.NodeNACKed, Rejection: &stream.Rejection{Detail: "bad"}},
		"rest":   {NodeID: "rest", Scope: "edge", State: stream.NodeACKed},
	}
	sum, nodes := r.Standing()
	assert.Equal(t, &admin.FleetReplicaRollout{ID: "r", Stage: 0, NACKed: 1, Seen: 1,
		NACKs: []admin.FleetNodeNACK{{Node: "canary", Rejection: stream.Rejection{Detail: "bad"}}}}, sum)
	require.Len(t, nodes, 1, "only the nodes the stage selects")
	assert.Equal(t, "nacked", nodes["canary"].State)
	assert.Equal(t, "bad", nodes["canary"].Rejection.Detail)
	assert.Equal(t, []stream.Selector{{IDs: []string{"canary"}}}, fs.asked, "one look over the streams per stage, whatever the scopes")
	status, ok := r.Status()
	require.True(t, ok)
	assert.Equal(t, []string{"edge"}, status.Scopes)
	assert.Equal(t, base.Revision(), status.Base)
	assert.Equal(t, st.View().Revision(), status.Target)
	assert.Equal(t, 1, status.Applied.NACKed)

	// An older state, or another rollout's, read by the watch changes nothing.
	fs.takeWoken()
	r.update(s0.next(time.Now(), "x"), 9)
	other := s0
	other.ID = "q"
	r.update(other.next(time.Now(), "x"), 11)
	assert.Equal(t, time.Second, served("edge", rest))
	assert.Empty(t, fs.takeWoken())

	// The next stage selects every node: the scope's streams are woken.
	s1 := s0.next(time.Now(), "ACKed")
	r.update(s1, 12)
	assert.Equal(t, 2*time.Second, served("edge", rest))
	assert.Equal(t, []string{"edge"}, fs.takeWoken())
	sum, _ = r.Standing()
	assert.Equal(t, &admin.FleetReplicaRollout{ID: "r", Stage: 1, ACKed: 1, NACKed: 1, Seen: 2,
		NACKs: []admin.FleetNodeNACK{{Node: "canary", Rejection: stream.Rejection{Detail: "bad"}}}}, sum)

	// Rolled back: routing goes on until the source commits the base.
	rb := s1.rolledBack(time.Now(), "NACK", nil)
	r.update(rb, 13)
	assert.Equal(t, 2*time.Second, served("edge", rest), "the stage 100% still routes to current")
	commitWeb(t, st, "edge", time.Second)
	r.Committed(etcdState(t, rb, 13), "1", st.View())
	_, ok = r.Base(1)
	assert.False(t, ok)
	assert.Equal(t, time.Second, served("edge", canary))
	sum, nodes = r.Standing()
	assert.Nil(t, sum)
	assert.Nil(t, nodes)
	status, ok = r.Status()
	require.True(t, ok)
	assert.Equal(t, rollout.RolledBack, status.Phase)
}

// A rollback read by the watch before the source committed the base keeps
// the nodes outside the stage on the base; a promotion stops routing at once.
func TestRoutingRollbackBeforeTheBaseAndPromotion(t *testing.T) {
	st := store.New()
	commitWeb(t, st, "edge", time.Second)
	r := New(Options{})
	rest := &corev3.Node{Id: "rest"}
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Select: stream.Selector{IDs: []string{"canary"}}}}}.Normalized()
	require.NoError(t, err)
	s0 := State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running}
	r.Committing(etcdState(t, s0, 10), st.View())
	commitWeb(t, st, "edge", 2*time.Second)
	r.Committed(etcdState(t, s0, 10), "2", st.View())

	r.update(s0.rolledBack(time.Now(), "NACK", nil), 11)
	assert.Equal(t, time.Second, webTimeout(r.View("edge", rest, st.View()), "edge"), "the target never reaches a node outside the stage")

	// Another rollout, promoted.
	r2 := New(Options{})
	r2.Committing(etcdState(t, s0, 10), st.View())
	commitWeb(t, st, "edge", 3*time.Second)
	r2.Committed(etcdState(t, s0, 10), "2", st.View())
	assert.Equal(t, 2*time.Second, webTimeout(r2.View("edge", rest, st.View()), "edge"))
	r2.update(s0.next(time.Now(), "ACKed").next(time.Now(), "ACKed"), 12)
	assert.Equal(t, 3*time.Second, webTimeout(r2.View("edge", rest, st.View()), "edge"))
}
