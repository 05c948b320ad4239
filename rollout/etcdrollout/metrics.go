package etcdrollout

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leanxds/leanxds/rollout"
)

// descs are the descriptions of a Replica's metrics: the names of the
// rollout package's Manager, so that a dashboard reads either.
type descs struct {
	stage, phase, transitions, nacks, rollbacks, leader *prometheus.Desc
}

func newDescs() descs {
	return descs{
		stage: prometheus.NewDesc("leanxds_rollout_stage",
			"Index (from 0) of the stage the running or most recent rollout serves; -1 when there was none.", nil, nil),
		phase: prometheus.NewDesc("leanxds_rollout_phase",
			"1 for the phase of the running or most recent rollout, 0 for the others.", []string{"phase"}, nil),
		transitions: prometheus.NewDesc("leanxds_rollout_transitions_total",
			"Rollout decisions this replica wrote to etcd, by kind: stage, empty, promoted, held, rollback, promote, abort.",
			[]string{"what"}, nil),
		nacks: prometheus.NewDesc("leanxds_rollout_nacks_total",
			"Nodes whose NACK of a rollout's target decided a rollback this replica wrote.", nil, nil),
		rollbacks: prometheus.NewDesc("leanxds_rollback_total",
			"Rollbacks of rollouts (NACK, timeout, abort) this replica wrote.", nil, nil),
		leader: prometheus.NewDesc("leanxds_rollout_decider",
			"1 while this replica is the one that decides the rollouts' stages (etcd election), 0 otherwise.", nil, nil),
	}
}

// counted records a decision this replica wrote.
func (r *Replica) counted(what string, nacks int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.transitions == nil {
		r.transitions = map[string]uint64{}
	}
	r.transitions[what]++
	r.nacks += uint64(nacks)
	if what == "rollback" || what == "abort" {
		r.rollbacks++
	}
}

// Describe sends the descriptions of the Replica's metrics
// (prometheus.Collector).
func (r *Replica) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{r.descs.stage, r.descs.phase, r.descs.transitions, r.descs.nacks, r.descs.rollbacks, r.descs.leader} {
		ch <- d
	}
}

// Collect sends the Replica's metrics (prometheus.Collector):
// leanxds_rollout_stage, leanxds_rollout_phase{phase},
// leanxds_rollout_transitions_total{what}, leanxds_rollout_nacks_total,
// leanxds_rollback_total and leanxds_rollout_decider.
func (r *Replica) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	stage, phase := -1, rollout.Phase("")
	if r.latest.ID != "" {
		stage, phase = r.latest.Stage, r.latest.Phase
	}
	whats := maps.Clone(r.transitions)
	nacks, rollbacks := r.nacks, r.rollbacks
	r.mu.Unlock()

	ch <- prometheus.MustNewConstMetric(r.descs.stage, prometheus.GaugeValue, float64(stage))
	for _, p := range []rollout.Phase{rollout.Running, rollout.Held, rollout.Promoted, rollout.RolledBack, rollout.Superseded} {
		v := 0.0
		if p == phase {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(r.descs.phase, prometheus.GaugeValue, v, string(p))
	}
	for _, k := range slices.Sorted(maps.Keys(whats)) {
		ch <- prometheus.MustNewConstMetric(r.descs.transitions, prometheus.CounterValue, float64(whats[k]), k)
	}
	ch <- prometheus.MustNewConstMetric(r.descs.nacks, prometheus.CounterValue, float64(nacks))
	ch <- prometheus.MustNewConstMetric(r.descs.rollbacks, prometheus.CounterValue, float64(rollbacks))
	leader := 0.0
	if r.leader.Load() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(r.descs.leader, prometheus.GaugeValue, leader)
}
