package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// During a rollout, /debug/fleet judges a node against what the rollout
// serves it: the target to a node of its stage, the base to the others. A
// node its replica published a standing for is of the stage whatever selects
// it (here metadata, which the records do not carry); the router is asked of
// the others by id. The standing is on the page as its replica published it.
func TestDebugFleetDuringARollout(t *testing.T) {
	st := store.New()
	commitWeb := func(d time.Duration) {
		_, err := st.Commit(store.Set("edge", xdstest.Cluster("web", xdstest.WithConnectTimeout(d))))
		require.NoError(t, err)
	}
	commitWeb(time.Second)
	baseCDS := st.View().Table("edge", protocol.TypeCluster).Digest().Version()
	m := rollout.New(st, rollout.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	plan := rollout.Plan{Window: time.Minute, Stages: []rollout.Stage{
		{Name: "by id", Select: stream.Selector{IDs: []string{"canary-id"}}},
		{Name: "by metadata", Select: stream.Selector{Metadata: map[string]string{"canary": "true"}}},
	}}
	r, err := m.Stage(t.Context(), plan, "test", func() (store.Result, error) {
		return st.Commit(store.Set("edge", xdstest.Cluster("web", xdstest.WithConnectTimeout(2*time.Second))))
	})
	require.NoError(t, err)
	require.NotNil(t, r)
	require.NoError(t, m.Promote("to the metadata stage"))
	require.Equal(t, 1, r.Status().Stage)
	targetCDS := st.View().Table("edge", protocol.TypeCluster).Digest().Version()
	require.NotEqual(t, baseCDS, targetCDS)

	holding := func(replica, id, cds string, standing *FleetRollout) FleetEntry {
		return FleetEntry{Cursor: replica + "/" + id, Node: FleetNode{Node: id, Replica: replica, Scope: "edge", Rollout: standing,
			Types: map[string]FleetType{"CDS": {ACKed: cds, Sent: cds, Wildcard: true}}}}
	}
	acked := &FleetRollout{ID: r.Status().ID, Stage: 1, State: "acked"}
	fleet := &fakeFleet{nodes: []FleetEntry{
		holding("r1", "by-metadata", targetCDS, acked),     // its replica says the stage selects it
		holding("r1", "canary-id", targetCDS, nil),         // the router says so, by id
		holding("r1", "outside", baseCDS, nil),             // outside the stage, on the base
		holding("r1", "outside-on-target", targetCDS, nil), // outside the stage, yet on the target
		holding("r2", "canary-id", baseCDS, nil),           // of the stage, not there yet
		holding("r2", "stale", targetCDS, &FleetRollout{ID: "an-older-one", State: "acked"}),
	}}

	get := func(a *Admin) map[string]FleetPageNode {
		t.Helper()
		rec := serveAdmin(a, "/debug/fleet")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var p FleetPage
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
		out := map[string]FleetPageNode{}
		for _, n := range p.Nodes {
			out[n.Replica+"/"+n.Node] = n
		}
		return out
	}
	page := get(New(Options{Store: st, Streams: stream.New(st, stream.Options{Router: m}), Fleet: fleet, Rollouts: m}))
	assert.True(t, page["r1/by-metadata"].Current)
	assert.Equal(t, acked, page["r1/by-metadata"].Rollout)
	assert.True(t, page["r1/canary-id"].Current)
	assert.Nil(t, page["r1/canary-id"].Rollout)
	assert.True(t, page["r1/outside"].Current, "the base is what the rollout serves it")
	assert.False(t, page["r1/outside-on-target"].Current)
	assert.False(t, page["r2/canary-id"].Current, "the stage's node still on the base")
	assert.False(t, page["r2/stale"].Current, "a standing of another rollout: judged by id, outside the stage")

	// Without the rollouts, the store's newest content is the measure.
	page = get(New(Options{Store: st, Streams: stream.New(st, stream.Options{}), Fleet: fleet}))
	assert.True(t, page["r1/by-metadata"].Current)
	assert.False(t, page["r1/outside"].Current)
	assert.True(t, page["r1/outside-on-target"].Current)
}
