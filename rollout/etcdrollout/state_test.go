package etcdrollout

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/stream"
)

// Start writes a running state at stage 0 that the source reads, and names
// the rollout it supersedes.
func TestStart(t *testing.T) {
	at := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	start, err := Start(rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{IDs: []string{"n1"}}}}}, "ops@host", func() time.Time { return at })
	require.NoError(t, err)
	b, err := start(source.EtcdRollout{ID: "old", Phase: source.EtcdRolloutRunning, ModRevision: 4}, 3, 5)
	require.NoError(t, err)

	r, err := source.ParseEtcdRollout(b, 9)
	require.NoError(t, err)
	assert.True(t, r.Active())
	assert.Equal(t, int64(3), r.Base)
	assert.Equal(t, int64(5), r.Target)

	st, err := ParseState(b)
	require.NoError(t, err)
	assert.Regexp(t, `^gen5-[0-9a-f]{6}$`, st.ID)
	assert.Equal(t, rollout.Running, st.Phase)
	assert.Equal(t, 0, st.Stage)
	assert.Equal(t, "old", st.Supersedes)
	assert.Equal(t, at, st.StartedAt)
	assert.Equal(t, at, st.StageStartedAt)
	require.Len(t, st.Events, 1)
	assert.Equal(t, "started", st.Events[0].What)
	assert.Contains(t, st.Events[0].Message, "generation 5 over generation 3, stage canary first, by ops@host; supersedes rollout old")

	// A rollout that no longer runs is not superseded.
	b, err = start(source.EtcdRollout{ID: "old", Phase: "promoted", ModRevision: 4}, 3, 5)
	require.NoError(t, err)
	st, err = ParseState(b)
	require.NoError(t, err)
	assert.Empty(t, st.Supersedes)
}

// The transitions: the next stage, promoted after the last, rolled back,
// held; each records an event and leaves the state it came from as it was.
func TestTransitions(t *testing.T) {
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{IDs: []string{"n1"}}}}}.Normalized()
	require.NoError(t, err)
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	st := State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running, StageStartedAt: t0}
	st.event(t0, "started", "", nil)

	n1, n2 := &corev3.Node{Id: "n1"}, &corev3.Node{Id: "n2"}
	assert.True(t, st.Selects("s", n1))
	assert.False(t, st.Selects("s", n2))

	t1 := t0.Add(time.Minute)
	s1 := st.next(t1, "its 1 nodes ACKed")
	assert.Equal(t, 1, s1.Stage)
	assert.Equal(t, rollout.Running, s1.Phase)
	assert.Equal(t, t1, s1.StageStartedAt)
	assert.True(t, s1.Selects("s", n2), "the last stage selects every node")
	assert.Equal(t, "stage canary: its 1 nodes ACKed; stage 100% starts", s1.Events[1].Message)
	assert.Len(t, st.Events, 1, "the state it came from is unchanged")

	s2 := s1.next(t1, "its 2 nodes ACKed")
	assert.Equal(t, rollout.Promoted, s2.Phase)
	assert.False(t, s2.Active())
	assert.Equal(t, "promoted", s2.Events[2].What)

	rb := st.rolledBack(t1, "stage canary: 1 of its nodes NACKed", []stream.Rejection{{Detail: "bad"}})
	assert.Equal(t, rollout.RolledBack, rb.Phase)
	assert.Equal(t, "stage canary: 1 of its nodes NACKed; every node is served generation 1 again", rb.Events[1].Message)
	assert.Equal(t, "bad", rb.Events[1].Rejections[0].Detail)

	h := st.held(t1, "window ended")
	assert.Equal(t, rollout.Held, h.Phase)
	assert.True(t, h.Active())

	// Round trip through etcd's JSON.
	b, err := json.Marshal(rb)
	require.NoError(t, err)
	back, err := ParseState(b)
	require.NoError(t, err)
	assert.Equal(t, rb.Events[1].Message, back.Events[1].Message)
	assert.Equal(t, rb.Plan, back.Plan)
}

func TestEventsBounded(t *testing.T) {
	var st State
	for i := range MaxEvents + 10 {
		st.event(time.Time{}, "e", fmt.Sprint(i), nil)
	}
	require.Len(t, st.Events, MaxEvents)
	assert.Equal(t, "10", st.Events[0].Message, "the oldest go first")
}
