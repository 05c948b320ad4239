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

	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
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

	plan, err := Normalize(rollout.Plan{Window: time.Minute})
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
