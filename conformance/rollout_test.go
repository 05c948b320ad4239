package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// rolloutScenarios are about staged changes, a rollout.Manager being the
// server's Router: which nodes are served a staged change, what a rollback
// sends, what a node is served when it reconnects or the server restarts
// mid-rollout, and grpc-go canaries rejecting a change.
var rolloutScenarios = []scenario{
	{id: "rollout-rollback-versions", title: "a staged change reaches its stage's nodes only; a rollback sends them the exact versions they held before, and the others nothing",
		rules: []string{"R23", "R24"},
		run:   rolloutRuns(sotwRolloutRollback, deltaRolloutRollback)},
	{id: "rollout-reconnect", title: "a node that reconnects mid-rollout is served its stage's view; the next stage reaches the others",
		rules: []string{"R23", "R25"},
		run:   rolloutRuns(sotwRolloutReconnect, deltaRolloutReconnect)},
	{id: "rollout-restart", title: "a server restarted mid-rollout (MarshalState, RestoreState) serves each node its stage's view again and goes on from that stage",
		rules: []string{"R25"},
		run:   rolloutRuns(sotwRolloutRestart, deltaRolloutRestart)},
	{id: "rollout-restart-abort", title: "a rollout restored after a restart and then aborted sends the canary the exact versions it held before the change, and the others nothing",
		rules: []string{"R24", "R25"},
		run:   rolloutRuns(sotwRolloutRestartAbort, deltaRolloutRestartAbort)},
	{id: "rollout-nack-rollback", title: "the canary NACKs a staged change: the rollout rolls it back, sending the canary its earlier versions; a change every stage ACKs is promoted",
		rules: []string{"R23", "R24", "R21", "R20"},
		run:   rolloutWireRuns(sotwRolloutNACK, deltaRolloutNACK)},
	{id: "rollout-canary-nack", title: "grpc-go nodes in two groups: a change the canary NACKs is rolled back and never reaches the stable group; a good one is promoted through every stage; RPCs never fail",
		rules: []string{"R23", "R24", "R20", "R21"},
		run:   map[client]func(*testing.T){grpcGo: grpcRolloutCanary}},
}

// rolloutRuns runs the SotW and delta scripts over the wire and in memory,
// each against a server whose Router is a rollout Manager.
func rolloutRuns(sotw, delta func(*testing.T, *rolloutServer)) map[client]func(*testing.T) {
	run := func(c client, script func(*testing.T, *rolloutServer)) func(*testing.T) {
		return func(t *testing.T) {
			router := &routerSwitch{}
			r := &rolloutServer{server: serverFor(t, c, stream.Options{Router: router}), router: router}
			switch s := r.server.(type) {
			case *xdsServer:
				r.st = s.st
			case *memoryServer:
				r.st = s.st
			}
			r.newManager()
			r.attach()
			script(t, r)
		}
	}
	return map[client]func(*testing.T){
		memorySotW: run(memorySotW, sotw), scriptedSotW: run(scriptedSotW, sotw),
		memoryDelta: run(memoryDelta, delta), scriptedDelta: run(scriptedDelta, delta),
	}
}

// rolloutWireRuns runs the SotW and delta scripts over the wire only, with the
// Manager's loop running: it decides stages from what the stream server's
// streams ACK and NACK.
func rolloutWireRuns(sotw, delta func(*testing.T, *rolloutServer)) map[client]func(*testing.T) {
	all := rolloutRuns(func(t *testing.T, r *rolloutServer) { r.run(t); sotw(t, r) }, func(t *testing.T, r *rolloutServer) { r.run(t); delta(t, r) })
	return map[client]func(*testing.T){scriptedSotW: all[scriptedSotW], scriptedDelta: all[scriptedDelta]}
}

// routerSwitch is the stream.Router of a scenario's server: the Manager set
// last. The server is made before the Manager over its store, and a restarted
// process has a new Manager.
type routerSwitch struct {
	m atomic.Pointer[rollout.Manager]
}

func (r *routerSwitch) View(scope string, node *corev3.Node, cur store.View) store.View {
	if m := r.m.Load(); m != nil {
		return m.View(scope, node, cur)
	}
	return cur
}

// rolloutServer is a scripted server whose Router is a rollout Manager.
type rolloutServer struct {
	server
	st     *store.Store
	router *routerSwitch
	m      *rollout.Manager
}

// newManager gives the server a new Manager, as a new process has.
func (r *rolloutServer) newManager() {
	r.m = rollout.New(r.st, rollout.Options{Logger: slog.New(slog.DiscardHandler)})
	r.router.m.Store(r.m)
}

// attach attaches the running incarnation's stream server over the wire, so
// that the Manager wakes its streams; in memory, streams read the store when
// the script waits for them.
func (r *rolloutServer) attach() {
	if s, ok := r.server.(*xdsServer); ok {
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		r.m.Attach(srv)
	}
}

// stage stages changes with a plan of two stages: the nodes ids (the canary),
// then every node. The window is long: a stage ends when the script promotes
// or aborts, or when the Manager's loop (run) decides from the nodes.
func (r *rolloutServer) stage(t *testing.T, ids []string, changes ...store.Change) *rollout.Rollout {
	t.Helper()
	plan := rollout.Plan{Stages: []rollout.Stage{
		{Name: "canary", Select: stream.Selector{IDs: ids}},
		{Name: "100%"},
	}, Window: time.Hour}
	ro, err := r.m.Stage(context.Background(), plan, "test", func() (store.Result, error) { return r.st.Commit(changes...) })
	if err != nil || ro == nil {
		t.Fatalf("stage: rollout %v, err %v", ro, err)
	}
	return ro
}

// run runs the Manager's loop until the test ends: it decides stages from the
// nodes' ACKs and NACKs (over the wire only: it waits on the stream server).
func (r *rolloutServer) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// wait waits until ro is promoted, rolled back, held or superseded
// (rollout.Rollout.Wait), and wants it in phase want.
func wait(t *testing.T, ro *rollout.Rollout, want rollout.Phase) rollout.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	st, err := ro.Wait(ctx)
	if err != nil || st.Phase != want {
		t.Fatalf("rollout %s: %s (%v), want %s; events %+v", st.ID, st.Phase, err, want, st.Events)
	}
	return st
}

// streams returns the stream server of the running incarnation (over the
// wire only).
func (r *rolloutServer) streams(t *testing.T) *stream.Server {
	s, ok := r.server.(*xdsServer)
	if !ok {
		t.Fatalf("%T runs no stream server", r.server)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// everyNodeACKed wants the connected nodes to be exactly ids, each ACKed for
// rev (stream.Server.WaitApplied).
func (r *rolloutServer) everyNodeACKed(t *testing.T, rev uint64, ids ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	a, err := r.streams(t).WaitApplied(ctx, rev, stream.Selector{})
	want := map[string]stream.NodeState{}
	for _, id := range ids {
		want[id] = stream.NodeACKed
	}
	if err != nil || !nodesAre(want)(&a) {
		t.Fatalf("against revision %d: %s (%v), want %v ACKed", rev, describeApplied(a), err, ids)
	}
}

// phase wants the Manager's rollout in phase, at stage.
func (r *rolloutServer) phase(t *testing.T, phase rollout.Phase, stage int) rollout.Status {
	t.Helper()
	st, ok := r.m.Status()
	if !ok || st.Phase != phase || st.Stage != stage {
		t.Fatalf("rollout (%v): %s at stage %d, want %s at stage %d; events %+v", ok, st.Phase, st.Stage, phase, stage, st.Events)
	}
	return st
}

// restart stops the server mid-rollout and starts it again as a restarted
// process does: every stream ends, and a new Manager is given the old one's
// state (MarshalState, RestoreState) before the server serves again. The
// store is the same one, standing for a store restored from a snapshot with
// its content and history (persist keeps both).
func (r *rolloutServer) restart(t *testing.T) {
	t.Helper()
	data, err := r.m.MarshalState()
	if err != nil {
		t.Fatalf("MarshalState: %v", err)
	}
	r.stop()
	r.newManager()
	if err := r.m.RestoreState(data); err != nil {
		t.Fatalf("RestoreState: %v", err)
	}
	r.start(t)
	r.attach()
}

func (r *rolloutServer) mustPromote(t *testing.T) {
	t.Helper()
	if err := r.m.Promote("test"); err != nil {
		t.Fatalf("promote: %v", err)
	}
}

// connectTimeout returns the connect timeout of cluster name in a response.
func connectTimeout(t *testing.T, m any, name string) time.Duration {
	t.Helper()
	c, ok := m.(*clusterv3.Cluster)
	if !ok {
		t.Fatalf("%s: got %T, want a cluster", name, m)
	}
	return c.GetConnectTimeout().AsDuration()
}

// staged is the change the rollout scripts stage: cluster a's connect timeout.
const staged = 7 * time.Second

func stagedChange() store.Change { return setCluster("a", xdstest.WithConnectTimeout(staged)) }

// R23, R24: n1 (the canary) is sent the staged change, n2 and n3 nothing; an
// abort sends n1 the version it held before, to the byte, and n2 and n3 nothing.
func sotwRolloutRollback(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	cs := map[string]*conv.SotW{}
	var v0 string
	for _, id := range []string{"n1", "n2", "n3"} {
		cs[id] = r.ads(t, edgeNode(id))
		v0 = cs[id].Request(cds).ExpectResponse(conv.Names("a", "b")).Version()
		cs[id].ACK()
	}
	r.stage(t, []string{"n1"}, stagedChange())
	got := cs["n1"].ExpectResponse(conv.VersionNot(v0), conv.Names("a", "b"))
	if d := connectTimeout(t, got.Resource("a"), "a"); d != staged {
		t.Fatalf("the canary got a with connect timeout %v, want the staged %v", d, staged)
	}
	cs["n1"].ACK()
	cs["n2"].ExpectNothing()
	cs["n3"].ExpectNothing()

	if err := r.m.Abort("test"); err != nil {
		t.Fatal(err)
	}
	back := cs["n1"].ExpectResponse(conv.Version(v0), conv.Names("a", "b"))
	if d := connectTimeout(t, back.Resource("a"), "a"); d == staged {
		t.Fatalf("the rollback sent a with the staged connect timeout")
	}
	cs["n1"].ACK()
	cs["n1"].ExpectNothing()
	cs["n2"].ExpectNothing()
	cs["n3"].ExpectNothing()
	r.phase(t, rollout.RolledBack, 0)
	// The store holds the base again: a node connecting now gets its version.
	r.ads(t, edgeNode("n4")).Request(cds).ExpectResponse(conv.Version(v0), conv.Names("a", "b"))
}

func deltaRolloutRollback(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	cs := map[string]*conv.Delta{}
	var va, vb string
	for _, id := range []string{"n1", "n2", "n3"} {
		cs[id] = r.deltaADS(t, edgeNode(id))
		got := cs[id].Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"))
		va, vb = got.VersionOf("a"), got.VersionOf("b")
		cs[id].ACK()
	}
	r.stage(t, []string{"n1"}, stagedChange())
	got := cs["n1"].ExpectResponse(conv.Updated("a"), conv.NoRemoved())
	if got.VersionOf("a") == va || connectTimeout(t, got.Resource("a"), "a") != staged {
		t.Fatalf("the canary got a at version %q (base %q), want the staged change", got.VersionOf("a"), va)
	}
	cs["n1"].ACK()
	cs["n2"].ExpectNothing()
	cs["n3"].ExpectNothing()

	if err := r.m.Abort("test"); err != nil {
		t.Fatal(err)
	}
	cs["n1"].ExpectResponse(conv.Updated("a"), conv.VersionOf("a", va), conv.NoRemoved())
	cs["n1"].ACK()
	cs["n1"].ExpectNothing()
	cs["n2"].ExpectNothing()
	cs["n3"].ExpectNothing()
	r.phase(t, rollout.RolledBack, 0)
	r.deltaADS(t, edgeNode("n4")).Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"), conv.VersionOf("a", va), conv.VersionOf("b", vb))
}

// R23, R25: mid-rollout, the canary reconnecting is served the staged change,
// another node the base; promoting the stage sends the others the change.
func sotwRolloutReconnect(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.ads(t, edgeNode("n1")), r.ads(t, edgeNode("n2"))
	v0 := n1.Request(cds).ExpectResponse().Version()
	n1.ACK()
	n2.Request(cds).ExpectResponse(conv.Version(v0))
	n2.ACK()
	r.stage(t, []string{"n1"}, stagedChange())
	vT := n1.ExpectResponse(conv.VersionNot(v0)).Version()
	n1.ACK()
	n2.ExpectNothing()

	n1.Cancel()
	n2.Cancel()
	n1 = r.ads(t, edgeNode("n1"))
	n1.Request(cds).ExpectResponse(conv.Version(vT), conv.Names("a", "b"))
	n1.ACK()
	n2 = r.ads(t, edgeNode("n2"))
	n2.Request(cds).ExpectResponse(conv.Version(v0), conv.Names("a", "b"))
	n2.ACK()
	n3 := r.ads(t, edgeNode("n3"))
	n3.Request(cds).ExpectResponse(conv.Version(v0))
	n3.ACK()

	r.mustPromote(t)
	r.phase(t, rollout.Running, 1)
	n2.ExpectResponse(conv.Version(vT))
	n2.ACK()
	n3.ExpectResponse(conv.Version(vT))
	n3.ACK()
	n1.ExpectNothing()
}

func deltaRolloutReconnect(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.deltaADS(t, edgeNode("n1")), r.deltaADS(t, edgeNode("n2"))
	va := n1.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b")).VersionOf("a")
	n1.ACK()
	n2.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"), conv.VersionOf("a", va))
	n2.ACK()
	r.stage(t, []string{"n1"}, stagedChange())
	vT := n1.ExpectResponse(conv.Updated("a")).VersionOf("a")
	if vT == va {
		t.Fatalf("the canary was sent a at its base version %q", va)
	}
	n1.ACK()
	n2.ExpectNothing()

	n1.Cancel()
	n2.Cancel()
	n1 = r.deltaADS(t, edgeNode("n1"))
	n1.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"), conv.VersionOf("a", vT))
	n1.ACK()
	n2 = r.deltaADS(t, edgeNode("n2"))
	n2.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"), conv.VersionOf("a", va))
	n2.ACK()

	r.mustPromote(t)
	r.phase(t, rollout.Running, 1)
	n2.ExpectResponse(conv.Updated("a"), conv.VersionOf("a", vT))
	n2.ACK()
	n1.ExpectNothing()
}

// R25: a restart mid-rollout restores the rollout at its stage, with its base
// and target: the canary is served the change again, another node the base,
// and the next stage goes on from there.
func sotwRolloutRestart(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.ads(t, edgeNode("n1")), r.ads(t, edgeNode("n2"))
	v0 := n1.Request(cds).ExpectResponse().Version()
	n1.ACK()
	n2.Request(cds).ExpectResponse(conv.Version(v0))
	n2.ACK()
	r.stage(t, []string{"n1"}, stagedChange())
	vT := n1.ExpectResponse(conv.VersionNot(v0)).Version()
	n1.ACK()
	before := r.phase(t, rollout.Running, 0)

	r.restart(t)
	after := r.phase(t, rollout.Running, 0)
	if after.ID != before.ID || after.Base != before.Base || after.Target != before.Target {
		t.Fatalf("restored rollout %s base %d target %d, want %s base %d target %d", after.ID, after.Base, after.Target, before.ID, before.Base, before.Target)
	}
	n1 = r.ads(t, edgeNode("n1"))
	n1.Request(cds).ExpectResponse(conv.Version(vT))
	n1.ACK()
	n2 = r.ads(t, edgeNode("n2"))
	n2.Request(cds).ExpectResponse(conv.Version(v0))
	n2.ACK()

	r.mustPromote(t)
	n2.ExpectResponse(conv.Version(vT))
	n2.ACK()
	r.mustPromote(t)
	r.phase(t, rollout.Promoted, 1)
	n1.ExpectNothing()
	n2.ExpectNothing()
}

func deltaRolloutRestart(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.deltaADS(t, edgeNode("n1")), r.deltaADS(t, edgeNode("n2"))
	va := n1.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b")).VersionOf("a")
	n1.ACK()
	n2.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"))
	n2.ACK()
	r.stage(t, []string{"n1"}, stagedChange())
	vT := n1.ExpectResponse(conv.Updated("a")).VersionOf("a")
	n1.ACK()
	before := r.phase(t, rollout.Running, 0)

	r.restart(t)
	after := r.phase(t, rollout.Running, 0)
	if after.ID != before.ID || after.Base != before.Base || after.Target != before.Target {
		t.Fatalf("restored rollout %s base %d target %d, want %s base %d target %d", after.ID, after.Base, after.Target, before.ID, before.Base, before.Target)
	}
	// D3: a client resuming with what it holds is sent only what differs,
	// and each holds its stage's content: nothing.
	n1 = r.deltaADS(t, edgeNode("n1"))
	n1.InitialVersions(cds, map[string]string{"a": vT, "b": n1VersionOfB(t, r)}, "*")
	n1.ExpectNothing()
	n2 = r.deltaADS(t, edgeNode("n2"))
	n2.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"), conv.VersionOf("a", va))
	n2.ACK()

	r.mustPromote(t)
	n2.ExpectResponse(conv.Updated("a"), conv.VersionOf("a", vT))
	n2.ACK()
	r.mustPromote(t)
	r.phase(t, rollout.Promoted, 1)
	n1.ExpectNothing()
	n2.ExpectNothing()
}

// n1VersionOfB returns the version of cluster b in the store: the staged
// change left it alone.
func n1VersionOfB(t *testing.T, r *rolloutServer) string {
	t.Helper()
	e := r.view().Table(scope, cds).Get("b")
	if e == nil {
		t.Fatal("no cluster b")
	}
	return e.Version
}

// grpcNodeBootstrap is grpc-go's bootstrap with node metadata.
type grpcNodeBootstrap struct {
	XDSServers []grpcXDSServer `json:"xds_servers"`
	Node       struct {
		ID       string            `json:"id"`
		Cluster  string            `json:"cluster"`
		Metadata map[string]string `json:"metadata,omitempty"`
	} `json:"node"`
}

// rpcLoop makes RPCs on d, one after the other, until stop is closed, and
// records which backend answered each and every failure.
type rpcLoop struct {
	d       *grpcDriver
	done    chan struct{}
	mu      sync.Mutex
	calls   int
	fails   []error
	backend string // of the newest answer
}

func startRPCLoop(ctx context.Context, d *grpcDriver, stop <-chan struct{}) *rpcLoop {
	l := &rpcLoop{d: d, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			backend, err := d.call(ctx)
			l.mu.Lock()
			l.calls++
			if err != nil {
				l.fails = append(l.fails, err)
			} else {
				l.backend = backend
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// more waits until every loop made n more RPCs, so that RPCs span each step.
func more(t *testing.T, loops map[string]*rpcLoop, n int) {
	t.Helper()
	for id, l := range loops {
		l.mu.Lock()
		want := l.calls + n
		l.mu.Unlock()
		deadline := time.Now().Add(waitFor)
		for {
			l.mu.Lock()
			got := l.calls
			l.mu.Unlock()
			if got >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s made %d RPCs of %d within %s", id, got, want, waitFor)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (l *rpcLoop) newest() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.backend
}

// R23, R24, R20, R21 with grpc-go: two canaries (node metadata group=canary)
// and two stable nodes, each making RPCs without pause to a backend cluster.
// A change grpc-go rejects (an LB policy it does not implement: MAGLEV, which
// its CDS parser refuses with "unexpected lbPolicy") is staged: the canaries
// NACK it, the Manager rolls it back, the stable nodes are never sent it. A
// good change (the cluster's endpoints move to another backend) is promoted
// through both stages, every node ACKs it (WaitApplied), and every node's
// RPCs reach the new backend. No RPC of any node fails from first to last.
func grpcRolloutCanary(t *testing.T) {
	router := &routerSwitch{}
	srv := startServerWith(t, stream.Options{Router: router})
	m := rollout.New(srv.st, rollout.Options{Logger: slog.New(slog.DiscardHandler)})
	router.m.Store(m)
	srv.mu.Lock()
	streams := srv.srv
	srv.mu.Unlock()
	m.Attach(streams)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()

	b := startGRPCBackends(t)
	srv.commit(t,
		store.Set(scope, xdstest.APIListener(svcListener, svcRoute)),
		store.Set(scope, xdstest.Route(svcRoute, xdstest.VirtualHost("svc", []string{"*"}, xdstest.RouteTo("/", "c1")))),
		store.Set(scope, xdstest.Cluster("c1")),
		store.Set(scope, xdstest.Endpoints("c1", b["b1"])))

	canaries, stable := []string{"canary-1", "canary-2"}, []string{"stable-1", "stable-2"}
	drivers := map[string]*grpcDriver{}
	for _, id := range append(slices.Clone(canaries), stable...) {
		var boot grpcNodeBootstrap
		boot.XDSServers = []grpcXDSServer{{ServerURI: srv.addr, ChannelCreds: []map[string]string{{"type": "insecure"}}}}
		boot.Node.ID, boot.Node.Cluster = id, scope
		if slices.Contains(canaries, id) {
			boot.Node.Metadata = map[string]string{"group": "canary"}
		}
		raw, err := json.Marshal(boot)
		if err != nil {
			t.Fatal(err)
		}
		d := &grpcDriver{srv: srv, bootstrap: raw}
		d.start(t)
		drivers[id] = d
	}
	j := &journeyRun{t: t, drivers: map[string]driver{}}
	for id, d := range drivers {
		j.drivers[id] = d
	}
	for id := range drivers {
		j.waitServed(id, []string{"b1"})
	}
	// From here on, every RPC of every node must succeed.
	stop := make(chan struct{})
	loops := map[string]*rpcLoop{}
	for id, d := range drivers {
		loops[id] = startRPCLoop(ctx, d, stop)
	}
	stopped := false
	stopLoops := func() {
		if !stopped {
			stopped = true
			close(stop)
			for _, l := range loops {
				<-l.done
			}
		}
	}
	defer stopLoops()

	plan := rollout.Plan{Stages: []rollout.Stage{
		{Name: "canary", Select: stream.Selector{Metadata: map[string]string{"group": "canary"}}},
		{Name: "100%"},
	}, Window: waitFor}

	// The bad change.
	var badVersion string
	started := time.Now()
	bad, err := m.Stage(ctx, plan, "maglev", func() (store.Result, error) {
		res, err := srv.st.Commit(store.Set(scope, xdstest.Cluster("c1", xdstest.WithLbPolicy(clusterv3.Cluster_MAGLEV))))
		if e := srv.st.View().Table(scope, cds).Get("c1"); e != nil {
			badVersion = e.Version
		}
		return res, err
	})
	if err != nil || bad == nil {
		t.Fatalf("stage the bad change: rollout %v, err %v", bad, err)
	}
	more(t, loops, 20)
	wctx, wcancel := context.WithTimeout(ctx, waitFor)
	st, err := bad.Wait(wctx)
	wcancel()
	if err != nil || st.Phase != rollout.RolledBack {
		t.Fatalf("the bad change: %s (%v), want rolled back; events %+v", st.Phase, err, st.Events)
	}
	var rejections []stream.Rejection
	for _, e := range st.Events {
		rejections = append(rejections, e.Rejections...)
	}
	if len(rejections) == 0 || !strings.Contains(rejections[0].Detail, "unexpected lbPolicy MAGLEV") || rejections[0].TypeURL != cds {
		t.Fatalf("rolled back without grpc-go's NACK of the LB policy: %+v", st.Events)
	}
	t.Logf("the bad change: %s on %s", st.Phase, rejections[0].Detail[:min(len(rejections[0].Detail), 80)])
	// The canaries were sent the bad cluster; the stable nodes never.
	sentBad := func(id string) bool {
		for _, r := range srv.log.responsesTo(id, started) {
			if r.typeURL == cds && r.versions["c1"] == badVersion {
				return true
			}
		}
		return false
	}
	if !slices.ContainsFunc(canaries, sentBad) {
		t.Fatalf("no canary was sent the staged cluster (version %s)", badVersion)
	}
	for _, id := range stable {
		if sentBad(id) {
			t.Errorf("stable node %s was sent the staged cluster the canaries rejected (R23)", id)
		}
	}
	more(t, loops, 20)
	// After the rollback every node runs the base's cluster again.
	a, err := streams.WaitApplied(ctxTimeout(t, ctx), srv.st.View().Revision(), stream.Selector{})
	if err != nil || a.ACKed != len(drivers) {
		t.Fatalf("after the rollback: %s (%v)", describeApplied(a), err)
	}

	// The good change: c1's endpoints move to b2.
	good, err := m.Stage(ctx, plan, "endpoints to b2", func() (store.Result, error) {
		return srv.st.Commit(store.Set(scope, xdstest.Endpoints("c1", b["b2"])))
	})
	if err != nil || good == nil {
		t.Fatalf("stage the good change: rollout %v, err %v", good, err)
	}
	more(t, loops, 20)
	wctx, wcancel = context.WithTimeout(ctx, waitFor)
	st, err = good.Wait(wctx)
	wcancel()
	if err != nil || st.Phase != rollout.Promoted {
		t.Fatalf("the good change: %s (%v), want promoted; events %+v", st.Phase, err, st.Events)
	}
	var acked []int
	for _, e := range st.Events {
		if e.What == "acked" {
			acked = append(acked, e.Stage)
		}
	}
	if !slices.Equal(acked, []int{0, 1}) {
		t.Errorf("stages ACKed %v, want every stage in order; events %+v", acked, st.Events)
	}
	a, err = streams.WaitApplied(ctxTimeout(t, ctx), st.Target, stream.Selector{})
	if err != nil || a.ACKed != len(drivers) || a.NACKed != 0 || a.Pending != 0 {
		t.Fatalf("after the promotion, against revision %d: %s (%v)", st.Target, describeApplied(a), err)
	}
	for _, n := range a.Nodes {
		if n.State != stream.NodeACKed || n.Revision < st.Target {
			t.Errorf("node %s: %s at %d, want ACKed at %d or later", n.NodeID, n.State, n.Revision, st.Target)
		}
	}
	more(t, loops, 20)
	// Every node's RPCs reach b2 now.
	deadline := time.Now().Add(waitFor)
	for id, l := range loops {
		for l.newest() != "b2" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := l.newest(); got != "b2" {
			t.Errorf("%s: RPCs answered by %q after the promotion, want b2", id, got)
		}
	}
	stopLoops()
	for id, l := range loops {
		t.Logf("%s: %d RPCs, %d failed", id, l.calls, len(l.fails))
		if len(l.fails) > 0 || l.calls == 0 {
			t.Errorf("%s: %d of %d RPCs failed during the rollouts: %v", id, len(l.fails), l.calls, l.fails)
		}
	}
	cancel()
	if err := <-runDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}

func ctxTimeout(t *testing.T, ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	t.Cleanup(cancel)
	return ctx
}

// R23, R24, R21, R20 with the Manager's loop deciding: n1 (the canary) NACKs
// the staged change; the rollout rolls back, n1 is sent the version it held
// before and n2 nothing. A second change n1 ACKs reaches n2 at the next stage
// and is promoted; both nodes run it.
func sotwRolloutNACK(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.ads(t, edgeNode("n1")), r.ads(t, edgeNode("n2"))
	v0 := n1.Request(cds).ExpectResponse().Version()
	n1.ACK()
	n2.Request(cds).ExpectResponse(conv.Version(v0))
	n2.ACK()

	bad := r.stage(t, []string{"n1"}, stagedChange())
	n1.ExpectResponse(conv.VersionNot(v0))
	n1.NACK("connect timeout refused")
	st := wait(t, bad, rollout.RolledBack)
	if !hasRejection(st, "n1", "connect timeout refused") {
		t.Fatalf("rolled back without n1's NACK: %+v", st.Events)
	}
	n1.ExpectResponse(conv.Version(v0), conv.Names("a", "b"))
	n1.ACK()
	n2.ExpectNothing()
	r.everyNodeACKed(t, revision(r), "n1", "n2")

	good := r.stage(t, []string{"n1"}, setCluster("b", xdstest.WithConnectTimeout(3*time.Second)))
	vT := n1.ExpectResponse(conv.VersionNot(v0)).Version()
	n1.ACK()
	n2.ExpectResponse(conv.Version(vT))
	n2.ACK()
	st = wait(t, good, rollout.Promoted)
	r.everyNodeACKed(t, st.Target, "n1", "n2")
}

func deltaRolloutNACK(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.deltaADS(t, edgeNode("n1")), r.deltaADS(t, edgeNode("n2"))
	va := n1.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b")).VersionOf("a")
	n1.ACK()
	n2.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"))
	n2.ACK()

	bad := r.stage(t, []string{"n1"}, stagedChange())
	n1.ExpectResponse(conv.Updated("a"))
	n1.NACK("connect timeout refused")
	st := wait(t, bad, rollout.RolledBack)
	if !hasRejection(st, "n1", "connect timeout refused") {
		t.Fatalf("rolled back without n1's NACK: %+v", st.Events)
	}
	n1.ExpectResponse(conv.Updated("a"), conv.VersionOf("a", va))
	n1.ACK()
	n2.ExpectNothing()
	r.everyNodeACKed(t, revision(r), "n1", "n2")

	good := r.stage(t, []string{"n1"}, setCluster("b", xdstest.WithConnectTimeout(3*time.Second)))
	vb := n1.ExpectResponse(conv.Updated("b")).VersionOf("b")
	n1.ACK()
	n2.ExpectResponse(conv.Updated("b"), conv.VersionOf("b", vb))
	n2.ACK()
	st = wait(t, good, rollout.Promoted)
	r.everyNodeACKed(t, st.Target, "n1", "n2")
}

// hasRejection reports whether a rollout's events hold a NACK of node whose
// detail contains detail.
func hasRejection(st rollout.Status, node, detail string) bool {
	for _, e := range st.Events {
		if e.What == "nack" && strings.Contains(e.Message, node) {
			for _, rj := range e.Rejections {
				if strings.Contains(rj.Detail, detail) {
					return true
				}
			}
		}
	}
	return false
}

// R25, R24: after a restart the base is the store's history (View.ScopeAt);
// aborting there sends the canary the versions it held before the change, to
// the byte, and the other node nothing.
func sotwRolloutRestartAbort(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.ads(t, edgeNode("n1")), r.ads(t, edgeNode("n2"))
	v0 := n1.Request(cds).ExpectResponse().Version()
	n1.ACK()
	n2.Request(cds).ExpectResponse(conv.Version(v0))
	n2.ACK()
	r.stage(t, []string{"n1"}, stagedChange())
	vT := n1.ExpectResponse(conv.VersionNot(v0)).Version()
	n1.ACK()

	r.restart(t)
	n1 = r.ads(t, edgeNode("n1"))
	n1.Request(cds).ExpectResponse(conv.Version(vT))
	n1.ACK()
	n2 = r.ads(t, edgeNode("n2"))
	n2.Request(cds).ExpectResponse(conv.Version(v0))
	n2.ACK()
	if err := r.m.Abort("test"); err != nil {
		t.Fatal(err)
	}
	back := n1.ExpectResponse(conv.Version(v0), conv.Names("a", "b"))
	if d := connectTimeout(t, back.Resource("a"), "a"); d == staged {
		t.Fatalf("the rollback sent a with the staged connect timeout")
	}
	n1.ACK()
	n1.ExpectNothing()
	n2.ExpectNothing()
	r.phase(t, rollout.RolledBack, 0)
}

func deltaRolloutRestartAbort(t *testing.T, r *rolloutServer) {
	r.commit(t, setCluster("a"), setCluster("b"))
	n1, n2 := r.deltaADS(t, edgeNode("n1")), r.deltaADS(t, edgeNode("n2"))
	va := n1.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b")).VersionOf("a")
	n1.ACK()
	n2.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"))
	n2.ACK()
	r.stage(t, []string{"n1"}, stagedChange())
	vT := n1.ExpectResponse(conv.Updated("a")).VersionOf("a")
	n1.ACK()

	r.restart(t)
	n1 = r.deltaADS(t, edgeNode("n1"))
	n1.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"), conv.VersionOf("a", vT))
	n1.ACK()
	n2 = r.deltaADS(t, edgeNode("n2"))
	n2.Subscribe(cds, "*").ExpectResponse(conv.Updated("a", "b"), conv.VersionOf("a", va))
	n2.ACK()
	if err := r.m.Abort("test"); err != nil {
		t.Fatal(err)
	}
	n1.ExpectResponse(conv.Updated("a"), conv.VersionOf("a", va), conv.NoRemoved())
	n1.ACK()
	n1.ExpectNothing()
	n2.ExpectNothing()
	r.phase(t, rollout.RolledBack, 0)
}
