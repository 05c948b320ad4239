package fleet

import "github.com/prometheus/client_golang/prometheus"

// metricDescs are the descriptions of a publisher's metrics.
type metricDescs struct {
	keys, txns, deferred, errors, nodes, pending *prometheus.Desc
}

func newMetricDescs() metricDescs {
	return metricDescs{
		keys: prometheus.NewDesc("leanxds_fleet_keys_written_total",
			"Fleet status keys written to etcd, by operation (put, delete).", []string{"op"}, nil),
		txns: prometheus.NewDesc("leanxds_fleet_txns_total",
			"Transactions that wrote fleet status to etcd.", nil, nil),
		deferred: prometheus.NewDesc("leanxds_fleet_changes_deferred_total",
			"Fleet status changes a poll left to the next because of --fleet-max-writes; a change deferred twice counts twice.", nil, nil),
		errors: prometheus.NewDesc("leanxds_fleet_errors_total",
			"Failed fleet status writes and lost leases.", nil, nil),
		nodes: prometheus.NewDesc("leanxds_fleet_nodes",
			"Nodes of this replica that etcd holds the status of.", nil, nil),
		pending: prometheus.NewDesc("leanxds_fleet_changes_pending",
			"Fleet status changes the last poll left to the next.", nil, nil),
	}
}

// Describe sends the descriptors of the publisher's metrics (prometheus.Collector).
func (p *Publisher) Describe(ch chan<- *prometheus.Desc) {
	d := p.descs
	for _, x := range []*prometheus.Desc{d.keys, d.txns, d.deferred, d.errors, d.nodes, d.pending} {
		ch <- x
	}
}

// Collect sends the publisher's metrics, read from its Stats
// (prometheus.Collector): leanxds_fleet_keys_written_total{op},
// leanxds_fleet_txns_total, leanxds_fleet_changes_deferred_total,
// leanxds_fleet_errors_total, leanxds_fleet_nodes and
// leanxds_fleet_changes_pending.
func (p *Publisher) Collect(ch chan<- prometheus.Metric) {
	s, d := p.Stats(), p.descs
	ch <- prometheus.MustNewConstMetric(d.keys, prometheus.CounterValue, float64(s.Puts), "put")
	ch <- prometheus.MustNewConstMetric(d.keys, prometheus.CounterValue, float64(s.Deletes), "delete")
	ch <- prometheus.MustNewConstMetric(d.txns, prometheus.CounterValue, float64(s.Txns))
	ch <- prometheus.MustNewConstMetric(d.deferred, prometheus.CounterValue, float64(s.Deferred))
	ch <- prometheus.MustNewConstMetric(d.errors, prometheus.CounterValue, float64(s.Errors))
	ch <- prometheus.MustNewConstMetric(d.nodes, prometheus.GaugeValue, float64(s.Nodes))
	ch <- prometheus.MustNewConstMetric(d.pending, prometheus.GaugeValue, float64(s.Pending))
}

var _ prometheus.Collector = (*Publisher)(nil)
