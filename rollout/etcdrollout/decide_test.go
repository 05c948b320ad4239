package etcdrollout

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/stream"
)

// A stage's window is measured on the decider's clock from when it first saw
// the stage: a start time in the state from a clock an hour off does not end
// it, and the window ending does (Hold, then a rollback with OnTimeout
// RollBack).
func TestDecideWindowOnTheDecidersClock(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	r := New(Options{Client: cli, Prefix: prefix, ID: "d", Now: func() time.Time { return now }})

	plan, err := rollout.Plan{Window: time.Minute}.Normalized()
	require.NoError(t, err)
	st := State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running, StageStartedAt: now.Add(-time.Hour)}
	b, err := json.Marshal(st)
	require.NoError(t, err)
	_, err = cli.Put(ctx, source.EtcdRolloutStateKey(prefix), string(b))
	require.NoError(t, err)

	require.NoError(t, r.decide(ctx))
	got, _, err := Read(ctx, cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, rollout.Running, got.Phase, "an hour-old start time on another clock")

	now = now.Add(59 * time.Second)
	require.NoError(t, r.decide(ctx))
	got, _, err = Read(ctx, cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, rollout.Running, got.Phase)

	now = now.Add(time.Second)
	require.NoError(t, r.decide(ctx))
	got, _, err = Read(ctx, cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, rollout.Held, got.Phase)
	assert.Contains(t, got.Events[len(got.Events)-1].Message, "stage 100%: its window of 1m0s ended with 0 nodes ACKed, 0 pending, no replica publishing its fleet status; waits for promote or abort")
}

// Run returns soon after its context ends, even while etcd does not answer.
func TestRunStopsWithoutEtcd(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	r := New(Options{Client: cli, Prefix: "/p", ID: "a", RequestTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context's end")
	}
	assert.False(t, r.Leader())
}

// putReplica writes a replica's record with its nodes' standing.
// putRunning writes a running rollout r of plan, stage 0, base 1 and target
// 2, with P/current at 2.
func putRunning(t *testing.T, cli *clientv3.Client, prefix string, plan rollout.Plan) {
	t.Helper()
	plan, err := plan.Normalized()
	require.NoError(t, err)
	b, err := json.Marshal(State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running})
	require.NoError(t, err)
	_, err = cli.Txn(context.Background()).Then(clientv3.OpPut(source.EtcdRolloutStateKey(prefix), string(b)),
		clientv3.OpPut(source.EtcdCurrentKey(prefix), "2")).Commit()
	require.NoError(t, err)
}

func putReplica(t *testing.T, cli *clientv3.Client, prefix, id string, sum *admin.FleetReplicaRollout) {
	t.Helper()
	b, err := json.Marshal(admin.FleetReplica{Addr: "127.0.0.1:1", Rollout: sum})
	require.NoError(t, err)
	_, err = cli.Put(context.Background(), source.EtcdReplicasPrefix(prefix)+id, string(b))
	require.NoError(t, err)
}

// The decision from the replicas' sums: a stage waits for every replica to
// report it; NACKs below MaxNACKs hold it (a NACKed node did not ACK); at
// MaxNACKs it rolls back, naming the nodes; every node ACKed on every replica
// moves to the next stage.
func TestDecideFromTheReplicasSums(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	r := New(Options{Client: cli, Prefix: prefix, ID: "d"})
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{Percent: 10}}}, MaxNACKs: 2, Window: time.Hour}.Normalized()
	require.NoError(t, err)
	st := State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running}
	b, err := json.Marshal(st)
	require.NoError(t, err)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut(source.EtcdRolloutStateKey(prefix), string(b)), clientv3.OpPut(source.EtcdCurrentKey(prefix), "2")).Commit()
	require.NoError(t, err)
	phaseStage := func() (rollout.Phase, int) {
		require.NoError(t, r.decide(ctx))
		got, _, err := Read(ctx, cli, prefix)
		require.NoError(t, err)
		return got.Phase, got.Stage
	}

	putReplica(t, cli, prefix, "a", &admin.FleetReplicaRollout{ID: "r", Stage: 0, ACKed: 3})
	putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "old", Stage: 0, ACKed: 3})
	phase, stage := phaseStage()
	assert.Equal(t, rollout.Running, phase, "replica b does not report the stage yet")
	assert.Equal(t, 0, stage)

	rej := stream.Rejection{TypeURL: "CDS", Detail: "bad"}
	putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "r", Stage: 0, ACKed: 2, NACKed: 1, NACKs: []admin.FleetNodeNACK{{Node: "n1", Rejection: rej}}})
	phase, stage = phaseStage()
	assert.Equal(t, rollout.Running, phase, "one NACK of two")
	assert.Equal(t, 0, stage, "a NACKed node did not ACK")

	putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "r", Stage: 0, ACKed: 3})
	phase, stage = phaseStage()
	assert.Equal(t, rollout.Running, phase)
	assert.Equal(t, 1, stage, "every node of both replicas ACKed")

	putReplica(t, cli, prefix, "a", &admin.FleetReplicaRollout{ID: "r", Stage: 1, ACKed: 9, NACKed: 1, NACKs: []admin.FleetNodeNACK{{Node: "n7", Rejection: rej}}})
	putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "r", Stage: 1, ACKed: 9, NACKed: 1, NACKs: []admin.FleetNodeNACK{{Node: "n8", Rejection: rej}}})
	phase, _ = phaseStage()
	assert.Equal(t, rollout.RolledBack, phase)
	got, _, err := Read(ctx, cli, prefix)
	require.NoError(t, err)
	msg := got.Events[len(got.Events)-1].Message
	assert.Contains(t, msg, "stage 100%: 2 of its nodes NACKed (at most 2)")
	assert.Contains(t, msg, "NACK from node n7 (replica a) of CDS: bad; NACK from node n8 (replica b) of CDS: bad")
	resp, err := cli.Get(ctx, source.EtcdCurrentKey(prefix))
	require.NoError(t, err)
	assert.Equal(t, "1", string(resp.Kvs[0].Value))
}

// A stage no node of which is connected to any replica passes once its
// window ended (event "empty"), as the rollout package's Manager does; before
// that, it waits (a replica that has just started has no node yet).
func TestDecideEmptyStage(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	r := New(Options{Client: cli, Prefix: prefix, ID: "d", Now: func() time.Time { return now }})
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Name: "1%", Select: stream.Selector{Percent: 1}}}, Window: time.Minute}.Normalized()
	require.NoError(t, err)
	b, err := json.Marshal(State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running})
	require.NoError(t, err)
	_, err = cli.Put(ctx, source.EtcdRolloutStateKey(prefix), string(b))
	require.NoError(t, err)
	putReplica(t, cli, prefix, "a", &admin.FleetReplicaRollout{ID: "r", Stage: 0})
	putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "r", Stage: 0})

	require.NoError(t, r.decide(ctx))
	got, _, err := Read(ctx, cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, 0, got.Stage, "no node ACKed: the stage waits for its window")

	now = now.Add(time.Minute)
	require.NoError(t, r.decide(ctx))
	got, _, err = Read(ctx, cli, prefix)
	require.NoError(t, err)
	assert.Equal(t, 1, got.Stage)
	assert.Equal(t, rollout.Running, got.Phase)
	ev := got.Events[len(got.Events)-1]
	assert.Equal(t, "empty", ev.What)
	assert.Equal(t, "stage 1%: no node of it connected within its window of 1m0s; stage 100% starts", ev.Message)
}
