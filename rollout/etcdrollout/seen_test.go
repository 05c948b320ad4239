package etcdrollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// A replica's standing counts the nodes of the stage it served during it
// (Seen) and those of them no longer connected (Gone), per stage; it cuts
// each NACK's detail to rollout.MaxDetail bytes, in the nodes' records and
// in its sum.
func TestStandingSeenGoneAndBoundedNACKs(t *testing.T) {
	st := store.New()
	commitWeb(t, st, "edge", time.Second)
	r := New(Options{})
	fs := &fakeStreams{}
	r.Attach(fs)
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{IDs: []string{"c1", "c2"}}}}}.Normalized()
	require.NoError(t, err)
	s0 := State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running}
	r.Committing(etcdState(t, s0, 10), st.View())
	commitWeb(t, st, "edge", 2*time.Second)
	r.Committed(etcdState(t, s0, 10), "2", st.View())

	// The admin server peeks at what c2, connected to another replica, would
	// be served: the target, and it is not counted here.
	assert.Equal(t, 2*time.Second, webTimeout(r.Peek("edge", &corev3.Node{Id: "c2"}, st.View()), "edge"))
	assert.Equal(t, time.Second, webTimeout(r.Peek("edge", &corev3.Node{Id: "other"}, st.View()), "edge"))
	sum, _ := r.Standing()
	assert.Zero(t, sum.Seen, "a peek sees no node")

	// c1 is served the target and goes before any poll of the standing.
	assert.Equal(t, 2*time.Second, webTimeout(r.View("edge", &corev3.Node{Id: "c1"}, st.View()), "edge"))
	long := strings.Repeat("z", 100<<10)
	fs.nodes = map[string]stream.NodeApplied{
		"c2": {NodeID: "c2", Scope: "edge", State: stream.NodeNACKed, Rejection: &stream.Rejection{Detail: long}},
	}
	sum, nodes := r.Standing()
	assert.Equal(t, 1, sum.NACKed)
	assert.Equal(t, 2, sum.Seen)
	assert.Equal(t, 1, sum.Gone, "c1 was served the target and is gone")
	assert.Equal(t, []string{"c1"}, sum.GoneNodes, "named for the decider to look for on the other replicas")
	require.Len(t, sum.NACKs, 1)
	assert.Equal(t, rollout.BoundDetail(long), sum.NACKs[0].Rejection.Detail)
	assert.Equal(t, rollout.BoundDetail(long), nodes["c2"].Rejection.Detail)
	assert.Len(t, fs.nodes["c2"].Rejection.Detail, 100<<10, "the stream's rejection is not modified")

	// c1 comes back: it is not gone.
	fs.nodes["c1"] = stream.NodeApplied{NodeID: "c1", Scope: "edge", State: stream.NodeACKed}
	sum, _ = r.Standing()
	assert.Equal(t, 2, sum.Seen)
	assert.Zero(t, sum.Gone)

	// The next stage starts with no node seen but those connected.
	fs.nodes = map[string]stream.NodeApplied{"c1": {NodeID: "c1", Scope: "edge", State: stream.NodeACKed}}
	r.update(s0.next(time.Now(), "x"), 11)
	sum, _ = r.Standing()
	assert.Equal(t, 1, sum.Stage)
	assert.Equal(t, 1, sum.Seen)
	assert.Zero(t, sum.Gone)

	// The seen set is bounded.
	ids := make([]string, MaxSeen+10)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%d", i)
	}
	r.see(&r.route.Load().state, ids...)
	seen, gone, named := r.seenGone(&r.route.Load().state, nil)
	assert.Equal(t, MaxSeen, seen)
	assert.Equal(t, MaxSeen, gone)
	require.Len(t, named, admin.MaxFleetGoneNodes, "the record names a bounded few")
	assert.True(t, slices.IsSorted(named))

	// And bounded in bytes: ids are the clients'.
	other := r.route.Load().state
	other.ID = "another rollout"
	big := strings.Repeat("x", 64<<10)
	for i := range 40 {
		r.see(&other, fmt.Sprintf("%02d-%s", i, big))
	}
	seen, gone, named = r.seenGone(&other, nil)
	assert.Equal(t, MaxSeenBytes/(64<<10+3), seen, "ids past MaxSeenBytes are not remembered")
	assert.Equal(t, seen, gone)
	assert.Empty(t, named, "ids past MaxFleetGoneNodeBytes are counted, not named")
}

// A node seen during the stage and gone since counts as pending: the stage
// is not empty once its window ended (it is held, as OnTimeout says, or
// rolled back with RollBack), and the nodes that ACKed do not move it to the
// next stage.
func TestDecideSeenAndGoneIsNotEmpty(t *testing.T) {
	for _, onTimeout := range []rollout.Action{rollout.Hold, rollout.RollBack} {
		t.Run(string(onTimeout), func(t *testing.T) {
			cli := etcdtest.Client(t)
			prefix := etcdtest.Prefix(t, cli)
			ctx := context.Background()
			now := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
			r := New(Options{Client: cli, Prefix: prefix, ID: "d", Now: func() time.Time { return now }})
			putRunning(t, cli, prefix, rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{Percent: 1}}}, Window: time.Minute, OnTimeout: onTimeout})
			putReplica(t, cli, prefix, "a", &admin.FleetReplicaRollout{ID: "r", Stage: 0, Seen: 1, Gone: 1})
			putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "r", Stage: 0, ACKed: 1, Seen: 1})

			require.NoError(t, r.decide(ctx))
			got, _, err := Read(ctx, cli, prefix)
			require.NoError(t, err)
			assert.Equal(t, 0, got.Stage, "a node of the stage is gone: the ACK of the other does not pass it")
			assert.Equal(t, rollout.Running, got.Phase)

			putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "r", Stage: 0})
			now = now.Add(time.Minute)
			require.NoError(t, r.decide(ctx))
			got, _, err = Read(ctx, cli, prefix)
			require.NoError(t, err)
			assert.Equal(t, 0, got.Stage, "a node seen and gone: the stage is not empty")
			ev := got.Events[len(got.Events)-1]
			assert.Contains(t, ev.Message, "stage canary: its window of 1m0s ended with 0 nodes ACKed, 0 pending, 1 seen during the stage and gone")
			if onTimeout == rollout.Hold {
				assert.Equal(t, rollout.Held, got.Phase)
			} else {
				assert.Equal(t, rollout.RolledBack, got.Phase)
			}
		})
	}
}

// A node gone from the replica that saw it and connected to another, which
// publishes it as having ACKed the same stage, moved: it is not gone, and the
// stage passes. A record of it with no standing, one against another
// rollout, or one still pending there, does not count.
func TestDecideMovedNodeIsNotGone(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	r := New(Options{Client: cli, Prefix: prefix, ID: "d"})
	putRunning(t, cli, prefix, rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{IDs: []string{"c1", "c2"}}}}, Window: time.Hour})
	putReplica(t, cli, prefix, "a", &admin.FleetReplicaRollout{ID: "r", Stage: 0, ACKed: 1, Seen: 2, Gone: 1, GoneNodes: []string{"c1"}})
	putReplica(t, cli, prefix, "b", &admin.FleetReplicaRollout{ID: "r", Stage: 0, ACKed: 1, Seen: 1})
	putNode := func(replica, id string, standing *admin.FleetRollout) {
		t.Helper()
		b, err := json.Marshal(admin.FleetNode{Node: id, Replica: replica, Scope: "default", Rollout: standing})
		require.NoError(t, err)
		_, err = cli.Put(ctx, source.EtcdNodesPrefix(prefix)+replica+"/"+id, string(b))
		require.NoError(t, err)
	}
	decided := func() State {
		t.Helper()
		require.NoError(t, r.decide(ctx))
		got, _, err := Read(ctx, cli, prefix)
		require.NoError(t, err)
		return got
	}

	assert.Equal(t, 0, decided().Stage, "c1 is gone and nowhere else")
	putNode("b", "c1", nil)
	assert.Equal(t, 0, decided().Stage, "on b, with no standing yet")
	putNode("b", "c1", &admin.FleetRollout{ID: "another", Stage: 0, State: "acked"})
	assert.Equal(t, 0, decided().Stage, "a standing against another rollout")
	_, _, tally, _, err := r.tally(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, tally.Gone)
	assert.Zero(t, tally.Moved)

	// Pending there: b's sum may not count it yet (records are written
	// before the sum), so it stays gone here rather than counted nowhere.
	putNode("b", "c1", &admin.FleetRollout{ID: "r", Stage: 0, State: "pending"})
	assert.Equal(t, 0, decided().Stage, "c1 has not ACKed on b")
	putNode("b", "c1", &admin.FleetRollout{ID: "r", Stage: 0, State: "acked"})
	_, _, tally, _, err = r.tally(ctx)
	require.NoError(t, err)
	assert.Zero(t, tally.Gone)
	assert.Equal(t, 1, tally.Moved)
	got := decided()
	assert.Equal(t, 1, got.Stage, "c1 moved to b and is counted there")
	require.NotEmpty(t, got.Events)
	assert.Contains(t, got.Events[len(got.Events)-1].Message, "its 2 nodes ACKed")
}
