package rollout

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// descs are the descriptions of a Manager's metrics.
type descs struct {
	stage, phase, transitions, nacks, rollbacks *prometheus.Desc
}

func newDescs() descs {
	return descs{
		stage: prometheus.NewDesc("leanxds_rollout_stage",
			"Index (from 0) of the stage the running or most recent rollout serves; -1 when there was none.", nil, nil),
		phase: prometheus.NewDesc("leanxds_rollout_phase",
			"1 for the phase of the running or most recent rollout, 0 for the others.", []string{"phase"}, nil),
		transitions: prometheus.NewDesc("leanxds_rollout_transitions_total",
			"Rollout events by kind: started, stage, acked, empty, held, promote, promoted, nack, timeout, abort, rollback, restart, superseded, restored.",
			[]string{"what"}, nil),
		nacks: prometheus.NewDesc("leanxds_rollout_nacks_total",
			"Nodes whose NACK of a rollout's target decided a rollback.", nil, nil),
		rollbacks: prometheus.NewDesc("leanxds_rollback_total",
			"Rollbacks: of rollouts (NACK, timeout, abort) and by the big red button.", nil, nil),
	}
}

// Describe sends the descriptions of the Manager's metrics
// (prometheus.Collector).
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.descs.stage
	ch <- m.descs.phase
	ch <- m.descs.transitions
	ch <- m.descs.nacks
	ch <- m.descs.rollbacks
}

// Collect sends the Manager's metrics (prometheus.Collector):
// leanxds_rollout_stage, leanxds_rollout_phase{phase},
// leanxds_rollout_transitions_total{what}, leanxds_rollout_nacks_total and
// leanxds_rollback_total.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	stage, phase := -1, Phase("")
	if r := m.cur; r != nil {
		stage, phase = r.st.Stage, r.st.Phase
	}
	whats := make(map[string]uint64, len(m.transitions))
	for k, v := range m.transitions {
		whats[k] = v
	}
	nacks, rollbacks := m.nacks, m.rollbacks
	m.mu.Unlock()

	ch <- prometheus.MustNewConstMetric(m.descs.stage, prometheus.GaugeValue, float64(stage))
	for _, p := range []Phase{Running, Held, Promoted, RolledBack, Superseded} {
		v := 0.0
		if p == phase {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.descs.phase, prometheus.GaugeValue, v, string(p))
	}
	for _, k := range slices.Sorted(maps.Keys(whats)) {
		ch <- prometheus.MustNewConstMetric(m.descs.transitions, prometheus.CounterValue, float64(whats[k]), k)
	}
	ch <- prometheus.MustNewConstMetric(m.descs.nacks, prometheus.CounterValue, float64(nacks))
	ch <- prometheus.MustNewConstMetric(m.descs.rollbacks, prometheus.CounterValue, float64(rollbacks))
}
