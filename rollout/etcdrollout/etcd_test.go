package etcdrollout_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/admin/fleet"
	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/rollout/etcdrollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// logger logs to the test when LEANXDS_TEST_VERBOSE is set, and nowhere
// otherwise.
func logger(t testing.TB, id string) *slog.Logger {
	if os.Getenv("LEANXDS_TEST_VERBOSE") == "" {
		return quiet
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", id)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// fleetUnderTest is a prefix of the test cluster, a config directory applied
// to it, and the replicas serving it.
type fleetUnderTest struct {
	t      *testing.T
	cli    *clientv3.Client
	prefix string
	dir    string
}

func newFleet(t *testing.T) *fleetUnderTest {
	cli := etcdtest.Client(t)
	f := &fleetUnderTest{t: t, cli: cli, prefix: etcdtest.Prefix(t, cli), dir: t.TempDir()}
	// Generation 1: the content every node runs before the change.
	f.apply("1s", nil)
	return f
}

// webCluster is a resource file holding the STATIC cluster web with a
// connect timeout: what tells the base from the target in a test.
func webCluster(timeout string) string {
	return "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: web\ntype: STATIC\nconnect_timeout: " + timeout +
		"\nload_assignment:\n  cluster_name: web\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}\n"
}

// apply applies the directory holding web with timeout, staged by plan when
// it is not nil.
func (f *fleetUnderTest) apply(timeout string, plan *rollout.Plan) source.ApplyResult {
	f.t.Helper()
	require.NoError(f.t, os.WriteFile(filepath.Join(f.dir, "web.yaml"), []byte(webCluster(timeout)), 0o644))
	opts := source.ApplyOptions{By: "test"}
	if plan != nil {
		start, err := etcdrollout.Start(*plan, "test", nil)
		require.NoError(f.t, err)
		opts.Rollout = start
	}
	res, err := source.ApplyEtcd(context.Background(), f.cli, f.prefix, f.dir, opts)
	require.NoError(f.t, err)
	return res
}

// state reads the rollout state.
func (f *fleetUnderTest) state() etcdrollout.State {
	f.t.Helper()
	st, _, err := etcdrollout.Read(context.Background(), f.cli, f.prefix)
	require.NoError(f.t, err)
	return st
}

// waitState waits until the rollout state satisfies cond.
func (f *fleetUnderTest) waitState(what string, cond func(etcdrollout.State) bool) etcdrollout.State {
	f.t.Helper()
	var st etcdrollout.State
	eventually(f.t, what, func() bool {
		st = f.state()
		return cond(st)
	})
	return st
}

// current returns P/current.
func (f *fleetUnderTest) current() string {
	f.t.Helper()
	r, err := f.cli.Get(context.Background(), source.EtcdCurrentKey(f.prefix))
	require.NoError(f.t, err)
	require.Len(f.t, r.Kvs, 1)
	return string(r.Kvs[0].Value)
}

// genKeys counts the keys of generation gen.
func (f *fleetUnderTest) genKeys(gen int64) int64 {
	f.t.Helper()
	r, err := f.cli.Get(context.Background(), source.EtcdGenPrefix(f.prefix, strconv.FormatInt(gen, 10)), clientv3.WithPrefix(), clientv3.WithCountOnly())
	require.NoError(f.t, err)
	return r.Count
}

// replica is one leanxds replica in the test process: an etcd source, the
// streams, their gRPC server on 127.0.0.1, the fleet publisher and the
// rollouts, all over the fleet's prefix.
type replica struct {
	id   string
	st   *store.Store
	ro   *etcdrollout.Replica
	srv  *stream.Server
	cc   *grpc.ClientConn
	stop func()
}

func (f *fleetUnderTest) start(id string) *replica {
	t := f.t
	t.Helper()
	st := store.New()
	ro := etcdrollout.New(etcdrollout.Options{Client: f.cli, Prefix: f.prefix, ID: id, Logger: logger(t, id),
		Interval: 50 * time.Millisecond, TTL: 5 * time.Second})
	src := source.NewEtcd(f.cli, f.prefix, st, source.EtcdOptions{Rollouts: ro, Logger: logger(t, id)})
	srv := stream.New(st, stream.Options{Router: ro, Logger: quiet})
	ro.Attach(srv)
	pub, err := fleet.NewPublisher(f.cli, f.prefix, id, srv, fleet.Options{Store: st, Interval: 50 * time.Millisecond,
		TTL: 5 * time.Second, Rollout: ro.Standing, Logger: quiet})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	_, err = src.Load(ctx)
	require.NoError(t, err)
	g := grpc.NewServer(stream.ServerOption())
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Serve(lis) })
	wg.Go(func() { _ = src.Run(ctx) })
	wg.Go(func() { _ = pub.Run(ctx) })
	wg.Go(func() { _ = ro.Run(ctx) })
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	var once sync.Once
	r := &replica{id: id, st: st, ro: ro, srv: srv, cc: cc}
	r.stop = func() {
		once.Do(func() {
			cancel()
			_ = cc.Close()
			g.Stop()
			wg.Wait()
		})
	}
	t.Cleanup(r.stop)
	return r
}

func node(id string) *corev3.Node { return &corev3.Node{Id: id, Cluster: "default"} }

// client is a node's ADS stream to a replica, subscribed to every cluster.
type client struct {
	c    *conv.SotW
	last string // the connect timeout of web in the newest response
}

func (r *replica) connect(t *testing.T, id string) *client {
	t.Helper()
	c := &client{c: conv.ADS(t, r.cc, node(id), conv.WithTimeout(20*time.Second))}
	c.c.Request(protocol.TypeCluster)
	c.expect(t)
	c.c.ACK()
	return c
}

// expect waits for the next response and returns web's connect timeout in it.
func (c *client) expect(t *testing.T) string {
	t.Helper()
	resp := c.c.ExpectResponse(conv.Names("web"))
	c.last = resp.Resource("web").(*clusterv3.Cluster).GetConnectTimeout().AsDuration().String()
	return c.last
}

// eventually polls cond every 20ms for at most 30s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// needApplied skips the test when the streams do not judge their nodes
// against a revision (stream.Server.Applied).
func needApplied(t *testing.T) {
	st := store.New()
	srv := stream.New(st, stream.Options{Logger: quiet})
	if _, err := srv.WaitFor(context.Background(), 1, stream.Selector{}, func(*stream.Applied) bool { return true }); err != nil {
		t.Skipf("stream.Server.WaitFor: %v", err)
	}
}

// canaryPlan stages a change to the nodes of ids first, then to every node.
func canaryPlan(ids ...string) *rollout.Plan {
	return &rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{IDs: ids}}}, Window: time.Minute}
}

// Two replicas serve the same stage: the canary nodes of each are served the
// target, the others the base, whichever replica they are connected to; the
// rollout state names the base and the target, and the base generation is
// kept while the rollout runs.
func TestTwoReplicasServeTheSameStage(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	canaryA, otherA := a.connect(t, "canary-a"), a.connect(t, "other-a")
	canaryB, otherB := b.connect(t, "canary-b"), b.connect(t, "other-b")
	require.Equal(t, "1s", canaryA.last)

	res := f.apply("2s", canaryPlan("canary-a", "canary-b"))
	assert.Equal(t, source.ApplyNewGeneration, res.Mode)
	assert.Equal(t, int64(2), res.Generation)
	assert.Equal(t, int64(1), res.RolloutBase)
	require.NotEmpty(t, res.Rollout)
	st := f.state()
	assert.Equal(t, res.Rollout, st.ID)
	assert.Equal(t, rollout.Running, st.Phase)
	assert.Equal(t, 0, st.Stage)
	assert.Equal(t, int64(1), st.Base)
	assert.Equal(t, int64(2), st.Target)
	assert.Equal(t, "2", f.current())
	assert.Positive(t, f.genKeys(1), "the base generation is kept while the rollout runs")

	// The canaries get the target on both replicas.
	assert.Equal(t, "2s", canaryA.expect(t))
	assert.Equal(t, "2s", canaryB.expect(t))
	// The others are routed to the base on both replicas: what they are
	// served now is the base, though the store holds the target.
	for _, r := range []*replica{a, b} {
		assert.Equal(t, "2s", timeoutIn(r.st.View()), "replica %s's store holds the target", r.id)
		assert.Equal(t, "1s", timeoutIn(r.ro.View("default", node("other-x"), r.st.View())), "replica %s", r.id)
		assert.Equal(t, "2s", timeoutIn(r.ro.View("default", node("canary-a"), r.st.View())), "replica %s", r.id)
	}
	// A node reconnecting to the other replica keeps its side.
	otherA.c.Close()
	moved := b.connect(t, "other-a")
	assert.Equal(t, "1s", moved.last)
	canaryA.c.Close()
	movedCanary := b.connect(t, "canary-a")
	assert.Equal(t, "2s", movedCanary.last)
	_ = otherB
}

// timeoutIn returns web's connect timeout in a view of scope default.
func timeoutIn(v store.View) string {
	e := v.Table("default", protocol.TypeCluster).Get("web")
	if e == nil {
		return ""
	}
	var c clusterv3.Cluster
	if err := proto.Unmarshal(e.Body, &c); err != nil {
		return err.Error()
	}
	return c.GetConnectTimeout().AsDuration().String()
}

// A good change promotes through every stage with the ACKs of the nodes of
// both replicas counted (R20, on each replica against its own revision of the
// target); the base generation goes once it is promoted.
func TestGoodChangePromotesAcrossReplicas(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	canaryA, otherA := a.connect(t, "canary-a"), a.connect(t, "other-a")
	canaryB, otherB := b.connect(t, "canary-b"), b.connect(t, "other-b")

	f.apply("2s", canaryPlan("canary-a", "canary-b"))
	assert.Equal(t, "2s", canaryA.expect(t))
	// One canary ACKed: the stage waits for the other, on the other replica.
	canaryA.c.ACK()
	f.waitState("replica a reports canary-a ACKed", func(etcdrollout.State) bool {
		return fleetState(t, f, "a", "canary-a") == "acked"
	})
	assert.Equal(t, 0, f.state().Stage, "a stage waits for every node of every replica")
	assert.Equal(t, "2s", canaryB.expect(t))
	canaryB.c.ACK()

	// Both ACKed: the last stage (every node) starts on both replicas.
	f.waitState("stage 1", func(s etcdrollout.State) bool { return s.Stage == 1 })
	assert.Equal(t, "2s", otherA.expect(t))
	assert.Equal(t, "2s", otherB.expect(t))
	otherA.c.ACK()
	otherB.c.ACK()
	st := f.waitState("promoted", func(s etcdrollout.State) bool { return s.Phase == rollout.Promoted })
	assert.Equal(t, "2", f.current())
	assert.Zero(t, f.genKeys(1), "the base generation is deleted once promoted")
	whats := []string{}
	for _, ev := range st.Events {
		whats = append(whats, ev.What)
	}
	assert.Equal(t, []string{"started", "stage", "promoted"}, whats)
}

// A canary that moves to another replica during its stage (its first
// replica stopped serving it: --max-connection-age, a restart, a load
// balancer) is counted there: its ACK on the second replica passes the stage,
// while the first still remembers it as seen and gone.
func TestCanaryMovingReplicaMidStage(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	canary := a.connect(t, "canary")
	f.apply("2s", canaryPlan("canary"))
	assert.Equal(t, "2s", canary.expect(t))
	f.waitState("replica a reports the canary", func(etcdrollout.State) bool {
		return fleetState(t, f, "a", "canary") == "pending"
	})
	canary.c.Close()

	eventually(t, "replica b holds the target", func() bool { return timeoutIn(b.st.View()) == "2s" })
	moved := b.connect(t, "canary")
	assert.Equal(t, "2s", moved.last, "the stage's node is served the target on b too")
	st := f.waitState("the next stage", func(s etcdrollout.State) bool { return s.Stage == 1 })
	assert.Equal(t, rollout.Running, st.Phase)
	require.NotEmpty(t, st.Events)
	assert.Contains(t, st.Events[len(st.Events)-1].Message, "its 1 nodes ACKed")
}

// fleetState returns the standing a replica published for a node ("" when
// none).
func fleetState(t *testing.T, f *fleetUnderTest, replica, nodeID string) string {
	r, err := f.cli.Get(context.Background(), source.EtcdNodesPrefix(f.prefix)+replica+"/"+nodeID)
	require.NoError(t, err)
	if len(r.Kvs) == 0 {
		return ""
	}
	var n admin.FleetNode
	require.NoError(t, json.Unmarshal(r.Kvs[0].Value, &n))
	if n.Rollout == nil {
		return ""
	}
	return n.Rollout.State
}

// A NACK from the canary of replica A rolls the change back on both
// replicas: current is the base again, the state says why, the target
// generation is gone, every node runs the base, and the nodes outside the
// canary never received the target (R6: the base's commit changes nothing
// they hold, so they are sent nothing). The NACK counts against the target's
// revision on its replica (R21).
func TestNACKOnOneReplicaRollsBackOnBoth(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	canaryA, otherA := a.connect(t, "canary-a"), a.connect(t, "other-a")
	canaryB, otherB := b.connect(t, "canary-b"), b.connect(t, "other-b")

	f.apply("2s", canaryPlan("canary-a", "canary-b"))
	assert.Equal(t, "2s", canaryB.expect(t))
	canaryB.c.ACK()
	assert.Equal(t, "2s", canaryA.expect(t))
	canaryA.c.NACK("unsupported connect timeout")

	st := f.waitState("rolled back", func(s etcdrollout.State) bool { return s.Phase == rollout.RolledBack })
	assert.Equal(t, "1", f.current())
	assert.Zero(t, f.genKeys(2), "the target generation is deleted")
	last := st.Events[len(st.Events)-1]
	assert.Equal(t, "rolled_back", last.What)
	assert.Contains(t, last.Message, "NACK from node canary-a (replica a)")
	assert.Contains(t, last.Message, "unsupported connect timeout")
	require.Len(t, last.Rejections, 1)
	assert.Equal(t, "unsupported connect timeout", last.Rejections[0].Detail)

	// The canaries are served the base again, on both replicas.
	assert.Equal(t, "1s", canaryA.expect(t))
	assert.Equal(t, "1s", canaryB.expect(t))
	for _, r := range []*replica{a, b} {
		eventually(t, "replica "+r.id+" commits the base", func() bool { return timeoutIn(r.st.View()) == "1s" })
	}
	// The others' next response is the next change: they were sent nothing
	// in between.
	f.apply("3s", nil)
	assert.Equal(t, "3s", otherA.expect(t))
	assert.Equal(t, "3s", otherB.expect(t))

	// Both replicas show the phase; the decider counted its rollback.
	var rollbacks float64
	for _, r := range []*replica{a, b} {
		assert.Equal(t, 1.0, metric(t, r.ro, "leanxds_rollout_phase", "rolled_back"), r.id)
		assert.Equal(t, 0.0, metric(t, r.ro, "leanxds_rollout_stage", ""), r.id)
		rollbacks += metric(t, r.ro, "leanxds_rollback_total", "")
	}
	assert.Equal(t, 1.0, rollbacks, "one replica decided the rollback")
}

// metric returns the value of a metric of c, with label value lv ("" for
// none).
func metric(t *testing.T, c prometheus.Collector, name, lv string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lv != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != lv) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s %s", name, lv)
	return 0
}

// The deciding replica stopping lets the other decide: the rollout goes on
// from the stage the state names.
func TestDeciderFailover(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	eventually(t, "a replica decides", func() bool { return a.ro.Leader() || b.ro.Leader() })
	leader, other := a, b
	if b.ro.Leader() {
		leader, other = b, a
	}
	canary := other.connect(t, "canary-1")
	rest := other.connect(t, "other-1")

	f.apply("2s", canaryPlan("canary-1"))
	assert.Equal(t, "2s", canary.expect(t))
	leader.stop()
	eventually(t, "the other replica decides", other.ro.Leader)
	st := f.state()
	assert.Equal(t, rollout.Running, st.Phase)
	assert.Equal(t, 0, st.Stage, "the rollout is where the stopped decider left it")

	canary.c.ACK()
	f.waitState("stage 1", func(s etcdrollout.State) bool { return s.Stage == 1 })
	assert.Equal(t, "2s", rest.expect(t))
	rest.c.ACK()
	f.waitState("promoted", func(s etcdrollout.State) bool { return s.Phase == rollout.Promoted })
}

// A replica started mid-rollout loads the base and the target and serves
// the stage; an apply while the rollout runs supersedes it: stage 0 again,
// the same base, the superseded target gone.
func TestReplicaStartedMidRolloutAndSupersede(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a := f.start("a")
	canaryA := a.connect(t, "canary-a")
	first := f.apply("2s", canaryPlan("canary-a", "canary-c"))
	assert.Equal(t, "2s", canaryA.expect(t))

	c := f.start("c")
	canaryC, otherC := c.connect(t, "canary-c"), c.connect(t, "other-c")
	assert.Equal(t, "2s", canaryC.last)
	assert.Equal(t, "1s", otherC.last)
	status, ok := c.ro.Status()
	require.True(t, ok)
	assert.Equal(t, first.Rollout, status.ID)
	assert.Equal(t, []string{"default"}, status.Scopes)
	assert.Less(t, status.Base, status.Target)

	// A plain apply is refused while the rollout runs.
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "web.yaml"), []byte(webCluster("5s")), 0o644))
	_, err := source.ApplyEtcd(context.Background(), f.cli, f.prefix, f.dir, source.ApplyOptions{})
	require.ErrorIs(t, err, source.ErrRolloutRunning)

	// Staged again: it supersedes the first.
	second := f.apply("3s", canaryPlan("canary-c"))
	assert.Equal(t, int64(1), second.RolloutBase, "the same base")
	assert.Equal(t, int64(3), second.Generation)
	assert.Equal(t, first.Rollout, second.Superseded)
	st := f.state()
	assert.Equal(t, 0, st.Stage)
	assert.Equal(t, first.Rollout, st.Supersedes)
	assert.Zero(t, f.genKeys(2), "the superseded target is deleted")
	assert.Positive(t, f.genKeys(1), "the base is kept")

	assert.Equal(t, "3s", canaryC.expect(t))
	// canary-a is not in the new stage: back on the base.
	assert.Equal(t, "1s", canaryA.expect(t))
	assert.Equal(t, "1s", timeoutIn(a.ro.View("default", node("other-c"), a.st.View())))
}

// The deciding replica losing its lease (etcd revoked it, as when it stops
// renewing it) stops deciding, and the other replica decides: the rollout goes
// on, and a NACK then rolls it back.
func TestDeciderLeaseLost(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	eventually(t, "a replica decides", func() bool { return a.ro.Leader() || b.ro.Leader() })
	leader, other := a, b
	if b.ro.Leader() {
		leader, other = b, a
	}
	canary := leader.connect(t, "canary-1")
	f.apply("2s", canaryPlan("canary-1"))
	assert.Equal(t, "2s", canary.expect(t))

	ctx := context.Background()
	r, err := f.cli.Get(ctx, source.EtcdRolloutLeaderKey(f.prefix)+"/", clientv3.WithFirstCreate()...)
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	require.Equal(t, leader.id, string(r.Kvs[0].Value))
	_, err = f.cli.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
	require.NoError(t, err)
	eventually(t, "the other replica decides", func() bool { return other.ro.Leader() && !leader.ro.Leader() })

	canary.c.NACK("bad")
	st := f.waitState("rolled back", func(s etcdrollout.State) bool { return s.Phase == rollout.RolledBack })
	assert.Contains(t, st.Events[len(st.Events)-1].Message, "NACK from node canary-1 (replica "+leader.id+")")
	assert.Equal(t, "1s", canary.expect(t))
}

// A stage whose window ends is held; promote from any replica starts the
// next stage now, and abort from another rolls back.
func TestHeldPromoteAbort(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	canary := a.connect(t, "canary-1")
	rest := b.connect(t, "other-1")
	plan := &rollout.Plan{Stages: []rollout.Stage{
		{Name: "canary", Select: stream.Selector{IDs: []string{"canary-1"}}},
		{Name: "more", Select: stream.Selector{IDs: []string{"other-1"}}},
		{Name: "last", Select: stream.Selector{IDs: []string{"nobody"}}},
	}, Window: 300 * time.Millisecond}
	f.apply("2s", plan)
	assert.Equal(t, "2s", canary.expect(t)) // and not ACKed: the window ends
	st := f.waitState("held", func(s etcdrollout.State) bool { return s.Phase == rollout.Held })
	assert.Equal(t, 0, st.Stage)
	assert.Contains(t, st.Events[len(st.Events)-1].Message, "its window of 300ms ended with 0 nodes ACKed, 1 pending")

	require.NoError(t, b.ro.Promote("looks fine"))
	st = f.state()
	assert.Equal(t, 1, st.Stage)
	assert.Equal(t, rollout.Running, st.Phase)
	assert.Contains(t, st.Events[len(st.Events)-1].Message, "promoted by hand: looks fine")
	assert.Equal(t, "2s", rest.expect(t))

	require.NoError(t, a.ro.Abort("changed my mind"))
	assert.Equal(t, "1", f.current())
	assert.Equal(t, rollout.RolledBack, f.state().Phase)
	assert.Equal(t, "1s", canary.expect(t))
	assert.Equal(t, "1s", rest.expect(t))
	require.ErrorIs(t, a.ro.Promote(""), rollout.ErrNoRollout)
	_, err := b.ro.Rollback(3, "x")
	require.ErrorIs(t, err, etcdrollout.ErrRollbackRevision)
}

// Delta clients: a canary that leaves the stage (the rollout superseded by
// one that does not select it) is told the resources of the target its base
// does not hold are gone.
func TestDeltaCanaryBackToBase(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a := f.start("a")
	c := conv.DeltaADS(t, a.cc, node("canary-1"), conv.WithTimeout(20*time.Second))
	c.Subscribe(protocol.TypeCluster, "*")
	c.ExpectResponse(conv.Updated("web"))
	c.ACK()

	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "api.yaml"), []byte(strings.ReplaceAll(webCluster("1s"), "web", "api")), 0o644))
	f.apply("1s", canaryPlan("canary-1"))
	c.ExpectResponse(conv.Updated("api"))
	require.NoError(t, os.Remove(filepath.Join(f.dir, "api.yaml")))
	f.apply("2s", canaryPlan("canary-2"))
	c.ExpectResponse(conv.Removed("api"))
}

// A replica that stops takes its candidacy with it: its lease is revoked,
// not left to expire.
func TestStopRevokesTheCandidacy(t *testing.T) {
	f := newFleet(t)
	a := f.start("a")
	eventually(t, "a decides", a.ro.Leader)
	r, err := f.cli.Get(context.Background(), source.EtcdRolloutLeaderKey(f.prefix)+"/", clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	lease := clientv3.LeaseID(r.Kvs[0].Lease)
	a.stop()
	ttl, err := f.cli.TimeToLive(context.Background(), lease)
	require.NoError(t, err)
	assert.EqualValues(t, -1, ttl.TTL, "the lease is gone")
	r, err = f.cli.Get(context.Background(), source.EtcdRolloutLeaderKey(f.prefix)+"/", clientv3.WithPrefix())
	require.NoError(t, err)
	assert.Empty(t, r.Kvs)
}

// A canary that is sent the target and then goes (it may have crashed on it)
// does not make its stage look empty: the stage's window ends as the plan's
// OnTimeout says (held), the change does not reach the next stage, and the
// other nodes stay on the base.
func TestCanaryThatVanishesIsHeld(t *testing.T) {
	needApplied(t)
	f := newFleet(t)
	a, b := f.start("a"), f.start("b")
	canary, other := a.connect(t, "canary"), b.connect(t, "other")

	plan := canaryPlan("canary")
	plan.Window = 2 * time.Second
	f.apply("2s", plan)
	assert.Equal(t, "2s", canary.expect(t), "the canary is sent the target")
	eventually(t, "replica a publishes the canary seen", func() bool {
		r, err := f.cli.Get(context.Background(), source.EtcdReplicasPrefix(f.prefix)+"a")
		require.NoError(t, err)
		var rep admin.FleetReplica
		return len(r.Kvs) == 1 && json.Unmarshal(r.Kvs[0].Value, &rep) == nil && rep.Rollout != nil && rep.Rollout.Seen == 1
	})
	canary.c.Cancel()

	st := f.waitState("held", func(s etcdrollout.State) bool { return s.Phase != rollout.Running })
	require.Equal(t, rollout.Held, st.Phase, "events: %+v", st.Events)
	assert.Equal(t, 0, st.Stage)
	last := st.Events[len(st.Events)-1]
	assert.Equal(t, "held", last.What)
	assert.Contains(t, last.Message, "1 seen during the stage and gone")
	assert.Equal(t, "2", f.current())
	assert.Equal(t, "1s", other.last)
	assert.Equal(t, "1s", timeoutIn(b.ro.View("default", node("other"), b.st.View())), "the other node is served the base")
}
