package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/stream"
)

func TestParseStages(t *testing.T) {
	got, err := ParseStages("1%, 10%,100%")
	require.NoError(t, err)
	assert.Equal(t, []Stage{
		{Name: "1%", Select: stream.Selector{Percent: 1}},
		{Name: "10%", Select: stream.Selector{Percent: 10}},
		{Name: "100%", Select: stream.Selector{}},
	}, got)

	got, err = ParseStages("ids=edge-1|edge-2,metadata.zone.name=eu-1,0.5%")
	require.NoError(t, err)
	assert.Equal(t, []Stage{
		{Name: "ids=edge-1|edge-2", Select: stream.Selector{IDs: []string{"edge-1", "edge-2"}}},
		{Name: "metadata.zone.name=eu-1", Select: stream.Selector{Metadata: map[string]string{"zone.name": "eu-1"}}},
		{Name: "0.5%", Select: stream.Selector{Percent: 0.5}},
	}, got)

	for in, want := range map[string]string{
		"":              "no stages",
		"1%,,100%":      `stage 2 "": empty stage`,
		"ten%":          `stage 1 "ten%": want a percentage`,
		"0%":            "above 0%",
		"150%":          "not in (0, 100]",
		"ids=":          "want node ids",
		"metadata.team": "want metadata.key=value",
		"metadata..x=1": "metadata key",
		"canary":        "want a percentage (10%), ids=a|b or metadata.key=value",
	} {
		_, err := ParseStages(in)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), want, in)
		}
	}
}

// A plan is completed: a last stage of every node, a window, one NACK, hold.
func TestPlanNormalized(t *testing.T) {
	stages, _ := ParseStages("1%,10%")
	p, err := Plan{Stages: stages}.Normalized()
	require.NoError(t, err)
	assert.Equal(t, []string{"1%", "10%", "100%"}, stageNames(p))
	assert.Equal(t, DefaultWindow, p.Window)
	assert.Equal(t, 1, p.MaxNACKs)
	assert.Equal(t, Hold, p.OnTimeout)

	stages, _ = ParseStages("1%,100%")
	p, _ = Plan{Stages: stages}.Normalized()
	assert.Equal(t, []string{"1%", "100%"}, stageNames(p))

	p, _ = Plan{}.Normalized()
	assert.Equal(t, []string{"100%"}, stageNames(p))

	_, err = Plan{OnTimeout: "explode"}.Normalized()
	assert.ErrorContains(t, err, `on_timeout "explode"`)
	_, err = Plan{Stages: []Stage{{Select: stream.Selector{Percent: 120}}}}.Normalized()
	assert.ErrorContains(t, err, "stage 1")
}

// The metrics follow the rollout: stage, phase, transitions and rollbacks.
func TestMetrics(t *testing.T) {
	st := edgeStore(t)
	m := New(st, Options{Logger: quiet()})
	assert.Equal(t, -1.0, gauge(t, m, "leanxds_rollout_stage"))

	stages, _ := ParseStages("1%,10%")
	mustStage(t, m, Plan{Stages: stages}, clusters("edge", 2*time.Second))
	require.NoError(t, m.Promote("go on"))
	require.NoError(t, m.Abort("enough"))

	want := `
# HELP leanxds_rollback_total Rollbacks: of rollouts (NACK, timeout, abort) and by the big red button.
# TYPE leanxds_rollback_total counter
leanxds_rollback_total 1
# HELP leanxds_rollout_nacks_total Nodes whose NACK of a rollout's target decided a rollback.
# TYPE leanxds_rollout_nacks_total counter
leanxds_rollout_nacks_total 0
# HELP leanxds_rollout_phase 1 for the phase of the running or most recent rollout, 0 for the others.
# TYPE leanxds_rollout_phase gauge
leanxds_rollout_phase{phase="held"} 0
leanxds_rollout_phase{phase="promoted"} 0
leanxds_rollout_phase{phase="rolled_back"} 1
leanxds_rollout_phase{phase="running"} 0
leanxds_rollout_phase{phase="superseded"} 0
# HELP leanxds_rollout_stage Index (from 0) of the stage the running or most recent rollout serves; -1 when there was none.
# TYPE leanxds_rollout_stage gauge
leanxds_rollout_stage 1
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want),
		"leanxds_rollback_total", "leanxds_rollout_nacks_total", "leanxds_rollout_phase", "leanxds_rollout_stage"))
	assert.Equal(t, 1.0, testutil.ToFloat64(collectorOf(m, "leanxds_rollout_transitions_total", "abort")))
	assert.Equal(t, 1.0, testutil.ToFloat64(collectorOf(m, "leanxds_rollout_transitions_total", "promote")))
	assert.Equal(t, 1.0, testutil.ToFloat64(collectorOf(m, "leanxds_rollout_transitions_total", "started")))
}
