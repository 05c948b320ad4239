package stream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// waitBound bounds every wait of these tests for what must happen.
const waitBound = 10 * time.Second

// ackedNode opens an ADS stream of node id subscribed to every cluster, and
// ACKs the first response.
func ackedNode(t *testing.T, e *env, id string) *conv.SotW {
	t.Helper()
	c := conv.ADS(t, e.cc, node(id, scope))
	c.Request(cds)
	c.ExpectResponse()
	c.ACK()
	return c
}

type waitResult struct {
	a   stream.Applied
	err error
}

// waitApplied runs WaitApplied in a goroutine; its result comes on the channel.
func waitApplied(ctx context.Context, srv *stream.Server, rev uint64, sel stream.Selector) <-chan waitResult {
	out := make(chan waitResult, 1)
	go func() {
		a, err := srv.WaitApplied(ctx, rev, sel)
		out <- waitResult{a, err}
	}()
	return out
}

func states(a stream.Applied) map[string]stream.NodeState {
	out := map[string]stream.NodeState{}
	for _, n := range a.Nodes {
		out[n.NodeID] = n.State
	}
	return out
}

// WaitApplied returns once every node selected ACKed the revision (R20); a
// node that disconnects meanwhile leaves the set (R22).
func TestWaitAppliedOverGRPC(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	n1, n2, gone := ackedNode(t, e, "n1"), ackedNode(t, e, "n2"), ackedNode(t, e, "gone")
	a, err := e.srv.WaitApplied(ctx, e.st.View().Revision(), stream.Selector{})
	require.NoError(t, err)
	require.Equal(t, 3, a.ACKed)

	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(3*time.Second))))
	rev := e.st.View().Revision()
	for _, c := range []*conv.SotW{n1, n2, gone} {
		c.ExpectResponse(conv.Names("a"))
	}
	a = e.srv.Applied(rev, stream.Selector{})
	assert.Equal(t, map[string]stream.NodeState{"n1": stream.NodePending, "n2": stream.NodePending, "gone": stream.NodePending}, states(a))
	assert.False(t, a.Done())

	done := waitApplied(ctx, e.srv, rev, stream.Selector{})
	n1.ACK()
	n2.ACK()
	gone.Cancel()
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, map[string]stream.NodeState{"n1": stream.NodeACKed, "n2": stream.NodeACKed}, states(r.a))
	assert.Equal(t, stream.Applied{Revision: rev, ACKed: 2, Nodes: r.a.Nodes}, r.a)
	for _, n := range r.a.Nodes {
		assert.Equal(t, rev, n.Revision)
		assert.Equal(t, scope, n.Scope)
	}
}

// A wait whose context ends returns where the nodes stand then, with the
// context's error; a NACK ends WaitApplied at once (R21).
func TestWaitAppliedEnds(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	c := ackedNode(t, e, "n1")
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(3*time.Second))))
	rev := e.st.View().Revision()
	c.ExpectResponse(conv.Names("a"))

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	a, err := e.srv.WaitApplied(short, rev, stream.Selector{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, map[string]stream.NodeState{"n1": stream.NodePending}, states(a))

	ctx, cancel2 := context.WithTimeout(t.Context(), waitBound)
	defer cancel2()
	done := waitApplied(ctx, e.srv, rev, stream.Selector{})
	c.NACK("bad timeout")
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, 1, r.a.NACKed)
	rej := r.a.Nodes[0].Rejection
	require.NotNil(t, rej)
	assert.Equal(t, "bad timeout", rej.Detail)
	assert.Equal(t, rev, rej.Revision)
	assert.Equal(t, cds, rej.TypeURL)
}

// WaitFor wakes a stream that has not read the revision (its scope did not
// change): it reads the store and is ACKed without a response (R20).
func TestWaitForWakesUnchanged(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	c := ackedNode(t, e, "n1")
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	_, err := e.srv.WaitApplied(ctx, e.st.View().Revision(), stream.Selector{})
	require.NoError(t, err)
	sent := e.status(t, "n1", nil).Types[0].NonceSent

	e.commit(t, store.Set("elsewhere", xdstest.Cluster("b")))
	rev := e.st.View().Revision()
	a := e.srv.Applied(rev, stream.Selector{})
	require.Equal(t, map[string]stream.NodeState{"n1": stream.NodePending}, states(a), "not read yet")
	a, err = e.srv.WaitApplied(ctx, rev, stream.Selector{})
	require.NoError(t, err)
	assert.Equal(t, map[string]stream.NodeState{"n1": stream.NodeACKed}, states(a))
	assert.Equal(t, rev, a.Nodes[0].Revision)
	assert.Equal(t, sent, e.status(t, "n1", nil).Types[0].NonceSent, "no response was sent")
	c.ExpectNothing()
}

// viewRouter serves the nodes it is told the view it is told; the others the
// store's current view.
type viewRouter struct {
	mu    sync.Mutex
	views map[string]store.View
}

func (r *viewRouter) View(_ string, n *corev3.Node, cur store.View) store.View {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.views[n.GetId()]; ok {
		return v
	}
	return cur
}

func (r *viewRouter) serve(id string, v *store.View) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v == nil {
		delete(r.views, id)
		return
	}
	if r.views == nil {
		r.views = map[string]store.View{}
	}
	r.views[id] = *v
}

// A Router switching a node's view, then Wake, makes its SotW stream send the
// other view's content with exactly the version that view's content has: the
// version a client of the store at that view was sent.
func TestRouterWakeSotW(t *testing.T) {
	r := &viewRouter{}
	e := newEnv(t, func(o *stream.Options) { o.Router = r })
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(1*time.Second))))
	base := e.st.View()
	witness := conv.ADS(t, e.cc, node("witness", scope))
	v1 := witness.Request(cds).ExpectResponse(conv.Names("a")).Version()
	witness.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(2*time.Second))))
	target := e.st.View()
	v2 := witness.ExpectResponse(conv.Names("a")).Version()
	witness.ACK()
	require.NotEqual(t, v1, v2)

	r.serve("n", &base)
	c := conv.ADS(t, e.cc, node("n", scope))
	c.Request(cds).ExpectResponse(conv.Names("a"), conv.Version(v1))
	c.ACK()

	r.serve("n", nil)
	e.srv.Wake(scope)
	c.ExpectResponse(conv.Names("a"), conv.Version(v2))
	c.ACK()

	r.serve("n", &base) // back, as a rollback does
	e.srv.Wake(scope)
	c.ExpectResponse(conv.Names("a"), conv.Version(v1))
	c.ACK()
	r.serve("n", &target)
	e.srv.Wake("")
	c.ExpectResponse(conv.Names("a"), conv.Version(v2))
	c.ACK()
	witness.ExpectNothing() // its view did not change: woken, it sends nothing (R6)
}

// The same for a delta stream: the resource's version and the response's
// system version are those of the view served.
func TestRouterWakeDelta(t *testing.T) {
	r := &viewRouter{}
	e := newEnv(t, func(o *stream.Options) { o.Router = r })
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(1*time.Second))))
	base := e.st.View()
	witness := conv.DeltaADS(t, e.cc, node("witness", scope))
	w1 := witness.Subscribe(cds, "*").ExpectResponse(conv.Updated("a"))
	witness.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(2*time.Second))))
	w2 := witness.ExpectResponse(conv.Updated("a"))
	witness.ACK()
	v1, v2 := w1.GetResources()[0].GetVersion(), w2.GetResources()[0].GetVersion()
	require.NotEqual(t, v1, v2)

	r.serve("n", &base)
	c := conv.DeltaADS(t, e.cc, node("n", scope))
	got := c.Subscribe(cds, "*").ExpectResponse(conv.Updated("a"), conv.VersionOf("a", v1))
	assert.Equal(t, w1.GetSystemVersionInfo(), got.GetSystemVersionInfo())
	c.ACK()

	r.serve("n", nil)
	e.srv.Wake(scope)
	got = c.ExpectResponse(conv.Updated("a"), conv.VersionOf("a", v2))
	assert.Equal(t, w2.GetSystemVersionInfo(), got.GetSystemVersionInfo())
	c.ACK()

	r.serve("n", &base)
	e.srv.Wake(scope)
	got = c.ExpectResponse(conv.Updated("a"), conv.VersionOf("a", v1), conv.NoRemoved())
	assert.Equal(t, w1.GetSystemVersionInfo(), got.GetSystemVersionInfo())
	c.ACK()
}
