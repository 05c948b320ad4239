package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// With serve --rollout and a fleet, each node of the stage is published with
// its standing against the target (the ROLLOUT column of leanxds fleet), the
// NACK details cut to rollout.MaxDetail; nodes outside the stage have none,
// and there is none once the rollout ends.
func TestLocalRolloutStandingInTheFleet(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"))
	standing := localStanding(ts.rollouts)
	sum, nodes := standing()
	require.Nil(t, sum, "no rollout")
	require.Nil(t, nodes)

	clients := map[string]*conv.SotW{}
	for _, id := range []string{"envoy-c1", "envoy-c2", "envoy-x"} {
		c := conv.ADS(t, ts.cc, node(id, "edge"), conv.WithTimeout(10*time.Second))
		c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))
		c.ACK()
		clients[id] = c
	}
	plan := rollout.Plan{Window: time.Minute, Stages: []rollout.Stage{
		{Name: "canaries", Select: stream.Selector{IDs: []string{"envoy-c1", "envoy-c2"}}}}}
	r, err := ts.rollouts.Stage(t.Context(), plan, "test", func() (store.Result, error) {
		return ts.st.Commit(store.Set("default", xdstest.Cluster("extra")))
	})
	require.NoError(t, err)
	require.NotNil(t, r)
	clients["envoy-c1"].ExpectResponse(conv.Names("api", "extra", "payments", "web"))
	clients["envoy-c1"].ACK()
	clients["envoy-c2"].ExpectResponse(conv.Names("api", "extra", "payments", "web"))
	long := strings.Repeat("no ", 2000)
	clients["envoy-c2"].NACK(long)

	eventually(t, "the canaries' answers", func() bool {
		sum, _ = standing()
		return sum != nil && sum.ACKed == 1 && sum.NACKed == 1
	})
	sum, nodes = standing()
	id := r.Status().ID
	assert.Equal(t, &admin.FleetReplicaRollout{ID: id, Stage: 0, ACKed: 1, NACKed: 1,
		NACKs: []admin.FleetNodeNACK{{Node: "envoy-c2", Rejection: *nodes["envoy-c2"].Rejection}}}, sum)
	require.Len(t, nodes, 2, "envoy-x is outside the stage")
	assert.Equal(t, &admin.FleetRollout{ID: id, Stage: 0, State: "acked"}, nodes["envoy-c1"])
	assert.Equal(t, "nacked", nodes["envoy-c2"].State)
	detail := nodes["envoy-c2"].Rejection.Detail
	assert.True(t, strings.HasPrefix(detail, long[:rollout.MaxDetail]), detail)
	assert.Regexp(t, `… \(\d+ bytes cut\)$`, detail)
	assert.Less(t, len(detail), rollout.MaxDetail+64)

	require.NoError(t, ts.rollouts.Abort("test"))
	sum, nodes = standing()
	assert.Nil(t, sum, "rolled back: no stage")
	assert.Nil(t, nodes)
}

// leanxds fleet's ROLLOUT column: a node of the stage with its standing (the
// stage counted from 1, as the rollout's pages do), "-" for the others.
func TestFleetTableRolloutColumn(t *testing.T) {
	var out strings.Builder
	nodes := []admin.FleetPageNode{
		{Node: "envoy-1", Replica: "r1", Scope: "edge", Current: true, Rollout: &admin.FleetRollout{ID: "r12", Stage: 1, State: "pending"}},
		{Node: "envoy-2", Replica: "r1", Scope: "edge", Current: true},
	}
	require.NoError(t, writeFleet(&out, admin.FleetPage{Total: 2}, nodes))
	assert.Regexp(t, `(?m)^REPLICA\s+NODE\s+SCOPE\s+CURRENT\s+BEHIND\s+ROLLOUT\s+NACK$`, out.String())
	assert.Regexp(t, `(?m)^r1\s+envoy-1\s+edge\s+yes\s+-\s+r12 stage 2 pending$`, out.String())
	assert.Regexp(t, `(?m)^r1\s+envoy-2\s+edge\s+yes\s+-\s+-$`, out.String())
}
