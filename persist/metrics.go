package persist

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The metrics a Persister exports, read from its Stats at each scrape.
var (
	descWrites = prometheus.NewDesc("leanxds_snapshot_writes_total",
		"Snapshots written.", nil, nil)
	descFailures = prometheus.NewDesc("leanxds_snapshot_write_failures_total",
		"Snapshot writes that failed; each retry counts.", nil, nil)
	descConflicts = prometheus.NewDesc("leanxds_snapshot_conflicts_total",
		"Snapshot writes that found the snapshot replaced by another writer.", nil, nil)
	descLastSuccess = prometheus.NewDesc("leanxds_snapshot_last_success_timestamp_seconds",
		"Unix time of the last snapshot written; 0 before the first.", nil, nil)
	descBytes = prometheus.NewDesc("leanxds_snapshot_bytes",
		"Size of the last snapshot written.", nil, nil)
	descRevision = prometheus.NewDesc("leanxds_snapshot_revision",
		"Lineage revision of the last snapshot written.", nil, nil)
)

// Describe sends the descriptors of the persister's metrics (prometheus.Collector).
func (p *Persister) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWrites, descFailures, descConflicts, descLastSuccess, descBytes, descRevision} {
		ch <- d
	}
	p.duration.Describe(ch)
}

// Collect sends the persister's metrics (prometheus.Collector):
// leanxds_snapshot_writes_total, _write_failures_total, _conflicts_total,
// _last_success_timestamp_seconds, _bytes, _revision and the histogram
// _write_duration_seconds.
func (p *Persister) Collect(ch chan<- prometheus.Metric) {
	s := p.Stats()
	var last float64
	if !s.LastSuccess.IsZero() {
		last = float64(s.LastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(s.Writes))
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.Failures))
	ch <- prometheus.MustNewConstMetric(descConflicts, prometheus.CounterValue, float64(s.Conflicts))
	ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(s.LastBytes))
	ch <- prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, float64(s.LastRevision))
	p.duration.Collect(ch)
}

var _ prometheus.Collector = (*Persister)(nil)
