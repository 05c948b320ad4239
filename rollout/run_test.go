package rollout

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// env is a Manager running over a stream.Server on 127.0.0.1, with a record
// of every version of cluster web each node was sent.
type env struct {
	st   *store.Store
	m    *Manager
	srv  *stream.Server
	cc   *grpc.ClientConn
	sent *sentLog
}

func newEnv(t *testing.T, st *store.Store, opts Options) *env {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	m := New(st, opts)
	sent := &sentLog{byNode: map[string][]string{}}
	srv := stream.New(st, stream.Options{Router: m, Logger: quiet(), Hooks: stream.Hooks{Response: sent.record}})
	m.Attach(srv)
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		_ = cc.Close()
		g.Stop()
	})
	return &env{st: st, m: m, srv: srv, cc: cc, sent: sent}
}

func (e *env) client(t *testing.T, id string, delta bool) *client {
	t.Helper()
	c := &client{t: t, sent: e.sent, id: id}
	if delta {
		c.delta = conv.DeltaADS(t, e.cc, node(id))
		c.delta.Subscribe(protocol.TypeCluster)
	} else {
		c.sotw = conv.ADS(t, e.cc, node(id))
		c.sotw.Request(protocol.TypeCluster)
	}
	c.receive()
	return c
}

func (e *env) webVersion() string {
	return e.st.View().Table("edge", protocol.TypeCluster).Get("web").Version
}

// sentLog records the versions of cluster web sent to each node.
type sentLog struct {
	mu     sync.Mutex
	byNode map[string][]string
}

func (l *sentLog) record(info stream.StreamInfo, r *stream.Response, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range r.Resources {
		if e.Name == "web" {
			l.byNode[info.NodeID] = append(l.byNode[info.NodeID], e.Version)
		}
	}
}

// await waits, at most 10s, until node id was sent version v of web.
func (l *sentLog) await(t *testing.T, id, v string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		ok := slices.Contains(l.byNode[id], v)
		l.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the server's log has no response of web %s to %s", v, id)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// sentTo returns the nodes that were sent version v of web, sorted.
func (l *sentLog) sentTo(v string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id, vs := range l.byNode {
		if slices.Contains(vs, v) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(ids ...string) []string { s := slices.Clone(ids); slices.Sort(s); return s }

func variants(t *testing.T, f func(t *testing.T, delta bool)) {
	t.Run("sotw", func(t *testing.T) { f(t, false) })
	t.Run("delta", func(t *testing.T) { f(t, true) })
}

// A good change goes 1% → 10% → 100%: each stage starts once every node of
// the one before ACKed, and is sent to its nodes only; then it is promoted.
func TestRunPromotesThroughStages(t *testing.T) {
	variants(t, func(t *testing.T, delta bool) {
		st := edgeStore(t)
		e := newEnv(t, st, Options{})
		f := newFleet(2)
		clients := e.clients(t, f, delta)
		stages, _ := ParseStages("1%,10%,100%")
		r := mustStage(t, e.m, Plan{Stages: stages, Window: time.Minute}, clusters("edge", 2*time.Second))
		target := e.webVersion()

		clients[f.canary].receiveOnly(target)
		assert.Equal(t, []string{f.canary}, e.sent.sentTo(target), "stage 1 is the 1% node")
		now, _ := e.m.Status()
		if assert.Len(t, now.Applied.Nodes, 1) {
			assert.Equal(t, f.canary, now.Applied.Nodes[0].NodeID)
			assert.Equal(t, stream.NodePending, now.Applied.Nodes[0].State)
		}
		clients[f.canary].ack()

		clients[f.ten].receiveOnly(target)
		assert.Equal(t, 1, r.Status().Stage)
		assert.Equal(t, sorted(f.canary, f.ten), e.sent.sentTo(target), "stage 2 adds the 10% node")
		clients[f.ten].ack()

		for _, id := range f.rest {
			clients[id].expectWeb(target)
		}
		got, err := r.Wait(t.Context())
		require.NoError(t, err)
		assert.Equal(t, Promoted, got.Phase)
		assert.Equal(t, []string{"started", "acked", "stage", "acked", "stage", "acked", "promoted"}, whats(got))
		assert.Len(t, got.Applied.Nodes, len(f.all()))
		assert.Equal(t, len(f.all()), got.Applied.ACKed)
		assert.Nil(t, e.m.routes.Load())
	})
}

// A NACK in the first stage rolls the change back: the stage's nodes are
// sent the base again with its exact version strings, the store holds the
// base content again, and the nodes outside the stage never received the
// target.
func TestRunRollsBackOnNACK(t *testing.T) {
	variants(t, func(t *testing.T, delta bool) {
		st := edgeStore(t)
		before := st.View().Table("edge", protocol.TypeCluster)
		e := newEnv(t, st, Options{})
		f := newFleet(3)
		clients := e.clients(t, f, delta)
		base, baseSet := clients[f.canary].webVersion, clients[f.canary].setVersion
		stages, _ := ParseStages("10%,100%")
		r := mustStage(t, e.m, Plan{Stages: stages, Window: time.Minute}, clusters("edge", 2*time.Second))
		target := e.webVersion()

		clients[f.ten].expectWeb(target)
		clients[f.canary].receiveOnly(target)
		clients[f.canary].nack("unsupported LB policy")

		got, err := r.Wait(t.Context())
		require.NoError(t, err)
		assert.Equal(t, RolledBack, got.Phase)
		nack := got.Events[len(got.Events)-1]
		assert.Equal(t, "nack", nack.What)
		assert.Contains(t, nack.Message, "NACK from node "+f.canary+": unsupported LB policy")
		if assert.Len(t, nack.Rejections, 1) {
			assert.Equal(t, "unsupported LB policy", nack.Rejections[0].Detail)
			assert.Equal(t, got.Target, nack.Rejections[0].Revision)
		}

		clients[f.canary].expectWeb(base)
		clients[f.ten].expectWeb(base)
		assert.Equal(t, baseSet, clients[f.canary].setVersion)
		assert.Equal(t, baseSet, clients[f.ten].setVersion)
		assert.Equal(t, sorted(f.canary, f.ten), e.sent.sentTo(target), "the nodes outside the stage never received the target")
		after := st.View().Table("edge", protocol.TypeCluster)
		assert.Equal(t, before.Digest(), after.Digest())
		assert.Equal(t, before.Get("web").Version, after.Get("web").Version)
		assert.Equal(t, 1.0, gauge(t, e.m, "leanxds_rollout_nacks_total"))
		assert.Equal(t, 1.0, gauge(t, e.m, "leanxds_rollback_total"))
	})
}

// A window that ends before the stage's nodes ACKed holds the rollout; Promote
// starts the next stage, and the rollout is promoted once all ACKed.
func TestRunHoldsOnTimeoutThenPromote(t *testing.T) {
	st := edgeStore(t)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := e.clients(t, f, false)
	stages, _ := ParseStages("1%,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: 200 * time.Millisecond}, clusters("edge", 2*time.Second))
	target := e.webVersion()
	clients[f.canary].receiveOnly(target) // and does not answer

	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, Held, got.Phase)
	assert.Equal(t, "held", got.Events[len(got.Events)-1].What)
	assert.Equal(t, 1, got.Applied.Pending)
	assert.Equal(t, []string{f.canary}, e.sent.sentTo(target))

	clients[f.canary].ack()
	require.NoError(t, e.m.Promote("looked fine"))
	clients[f.ten].expectWeb(target)
	clients[f.rest[0]].expectWeb(target)
	got, err = r.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, Promoted, got.Phase)

	// With OnTimeout RollBack, the window's end rolls back.
	r = mustStage(t, e.m, Plan{Stages: stages, Window: 100 * time.Millisecond, OnTimeout: RollBack}, clusters("edge", 3*time.Second))
	clients[f.canary].receiveOnly(e.webVersion())
	got, err = r.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, RolledBack, got.Phase)
	assert.Equal(t, "timeout", got.Events[len(got.Events)-1].What)
	clients[f.canary].expectWeb(target) // the base of this one: the promoted one
}

// A stage none of whose nodes is connected waits for its window, then
// passes: a restarted process has no node yet, and 1% of a small fleet may
// be no node at all.
func TestRunPassesAnEmptyStageAtItsWindow(t *testing.T) {
	st := edgeStore(t)
	e := newEnv(t, st, Options{})
	c := e.client(t, "edge-1", false)
	stages, _ := ParseStages("ids=ghost,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: 100 * time.Millisecond}, clusters("edge", 2*time.Second))
	c.expectWeb(e.webVersion())
	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, Promoted, got.Phase)
	assert.Equal(t, []string{"started", "empty", "stage", "acked", "promoted"}, whats(got))
}

// Fewer NACKs than MaxNACKs do not roll back, but a node that NACKed has
// not ACKed: the stage does not pass, and its window's end holds it.
func TestRunNACKsBelowMaxHold(t *testing.T) {
	st := edgeStore(t)
	e := newEnv(t, st, Options{})
	f := newFleet(1)
	clients := e.clients(t, f, false)
	stages, _ := ParseStages("10%,100%")
	r := mustStage(t, e.m, Plan{Stages: stages, Window: 200 * time.Millisecond, MaxNACKs: 2}, clusters("edge", 2*time.Second))
	target := e.webVersion()
	clients[f.ten].expectWeb(target)
	clients[f.canary].receiveOnly(target)
	clients[f.canary].nack("one is not enough")
	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, Held, got.Phase)
	assert.Equal(t, 0, got.Stage)
	assert.Equal(t, 1, got.Applied.NACKed)
	assert.Equal(t, 1, got.Applied.ACKed)
	assert.Contains(t, got.Events[len(got.Events)-1].Message, "1 NACKed")
	assert.Equal(t, sorted(f.canary, f.ten), e.sent.sentTo(target))
}
