package admin

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// otherType labels every type leanxds does not serve: a client may send any type
// URL, and a label per URL would let it grow the metrics without bound.
const otherType = "other"

// typeLabel is the metric label of a type URL: its short name ("CDS").
func typeLabel(typeURL string) string {
	if _, ok := protocol.Lookup(typeURL); ok {
		return protocol.Short(typeURL)
	}
	return otherType
}

// latencyBuckets span half a millisecond to about half a minute: pushes to a
// healthy fleet take milliseconds, a stalled client takes seconds.
func latencyBuckets() []float64 { return prometheus.ExponentialBuckets(0.0005, 2, 16) }

// Metrics are the Prometheus metrics of an xDS server, on a registry of their
// own: fed by stream hooks (Hooks, which run for every variant, SotW and delta
// alike, told apart by a label) and by the config source (Reloaded), and read
// from the store, the streams' limits and the source when scraped. Their names
// and labels are those dashboards know: leanxds_xds_*, leanxds_config_*,
// leanxds_store_*, leanxds_resources, and leanxds_build_info (buildinfo.go).
type Metrics struct {
	reg *prometheus.Registry

	streams     *prometheus.GaugeVec   // variant
	streamTypes *prometheus.GaugeVec   // variant, type
	requests    *prometheus.CounterVec // variant, type, kind
	responses   *prometheus.CounterVec // variant, type
	sent        *prometheus.CounterVec // variant, type
	acks        *prometheus.CounterVec // variant, type
	nacks       *prometheus.CounterVec // variant, type
	pushLatency *prometheus.HistogramVec
	ackLatency  *prometheus.HistogramVec

	reloads      *prometheus.CounterVec // result
	commits      prometheus.Counter
	lastReloadOK prometheus.Gauge
	lastApplied  prometheus.Gauge

	// perStream holds each open stream's *streamMetrics, by stream ID.
	perStream sync.Map
}

// streamMetrics is what the metrics remember of one stream.
type streamMetrics struct {
	mu sync.Mutex
	// lastRequest holds, per type label, when the client last sent a request of
	// it; a type is counted in streamTypes from its first request on.
	lastRequest map[string]time.Time
}

// NewMetrics returns the metrics of the streams of st, with the Go runtime's
// and the process's. Give Hooks to stream.New, and the Metrics to New.
func NewMetrics(st *store.Store) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leanxds_xds_streams",
			Help: "Connected xDS streams whose first request named their node, by protocol variant (sotw, delta).",
		}, []string{"variant"}),
		streamTypes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leanxds_xds_stream_types",
			Help: "Connected xDS streams that have requested each resource type, by variant.",
		}, []string{"variant", "type"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leanxds_xds_requests_total",
			Help: "xDS requests received, by variant, type and kind (subscribe, ack, nack, stale).",
		}, []string{"variant", "type", "kind"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leanxds_xds_responses_total",
			Help: "xDS responses sent, by variant and type.",
		}, []string{"variant", "type"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leanxds_xds_resources_sent_total",
			Help: "Resources carried by xDS responses, by variant and type.",
		}, []string{"variant", "type"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leanxds_xds_acks_total",
			Help: "Responses accepted by clients (ACK), by variant and type.",
		}, []string{"variant", "type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leanxds_xds_nacks_total",
			Help: "Responses rejected by clients (NACK), by variant and type: a client refuses the config it was sent.",
		}, []string{"variant", "type"}),
		pushLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leanxds_xds_push_latency_seconds",
			Help:    "Time from a commit to the response that pushes it to a client, by type. Answers to a client's own request are not counted.",
			Buckets: latencyBuckets(),
		}, []string{"type"}),
		ackLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leanxds_xds_ack_latency_seconds",
			Help:    "Time from a response to its ACK, by type.",
			Buckets: latencyBuckets(),
		}, []string{"type"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leanxds_config_reloads_total",
			Help: "Reloads of the config directory, by result: applied, unchanged, rejected (invalid, or with dangling references), or held (it would delete too much); the last good config is still served after the last two.",
		}, []string{"result"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leanxds_store_commits_total",
			Help: "Commits that changed the served resources.",
		}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "leanxds_config_last_reload_successful",
			Help: "1 if the last reload of the config directory was applied, 0 if it was rejected or held.",
		}),
		lastApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "leanxds_config_last_applied_timestamp_seconds",
			Help: "When the config directory was last read and applied, as a Unix time.",
		}),
	}
	m.initSeries()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.streams, m.streamTypes, m.requests, m.responses, m.sent, m.acks, m.nacks,
		m.pushLatency, m.ackLatency, m.reloads, m.commits, m.lastReloadOK, m.lastApplied,
		newStoreCollector(st),
	)
	reg.MustRegister(newBuildInfoGauge(ReadBuildInfo()))
	return m
}

// initSeries makes every series whose labels are known in advance exist from
// the start, at 0: a counter that appears with its first increment is missed
// by increase() and rate(), so an alert on NACKs, or on rejected reloads,
// would not see the first one. The known labels are every variant, every
// served type and every request kind; the "other" type, and the latency
// histograms (read through rates of many observations, never alerted on a
// first one), appear when first observed.
func (m *Metrics) initSeries() {
	for _, r := range []string{ReloadApplied, ReloadUnchanged, ReloadRejected, ReloadHeld} {
		m.reloads.WithLabelValues(r)
	}
	// The values of stream.StreamInfo.Variant, and the request kinds.
	for _, v := range []string{"sotw", "delta"} {
		m.streams.WithLabelValues(v)
		for _, t := range protocol.Types() {
			m.streamTypes.WithLabelValues(v, t.Short)
			m.responses.WithLabelValues(v, t.Short)
			m.sent.WithLabelValues(v, t.Short)
			m.acks.WithLabelValues(v, t.Short)
			m.nacks.WithLabelValues(v, t.Short)
			for _, k := range []stream.Kind{stream.KindSubscribe, stream.KindACK, stream.KindNACK, stream.KindStale} {
				m.requests.WithLabelValues(v, t.Short, k.String())
			}
		}
	}
}

// Registry is the registry /metrics serves: register more collectors on it
// (a persist.Persister is one).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Reloaded records a reload of the config: outcome is ReloadApplied,
// ReloadUnchanged, ReloadRejected or ReloadHeld, and changed whether it
// changed the store.
func (m *Metrics) Reloaded(outcome string, changed bool) {
	m.reloads.WithLabelValues(outcome).Inc()
	if outcome == ReloadRejected || outcome == ReloadHeld {
		m.lastReloadOK.Set(0)
		return
	}
	m.lastReloadOK.Set(1)
	m.lastApplied.SetToCurrentTime()
	if changed {
		m.commits.Inc()
	}
}

func (m *Metrics) stream(info stream.StreamInfo) *streamMetrics {
	if sm, ok := m.perStream.Load(info.ID); ok {
		return sm.(*streamMetrics)
	}
	sm, _ := m.perStream.LoadOrStore(info.ID, &streamMetrics{lastRequest: make(map[string]time.Time)})
	return sm.(*streamMetrics)
}

// Hooks returns the stream hooks that feed the metrics (stream.Options.Hooks).
// They take no lock shared between streams: the per-stream state is reached
// through a sync.Map.
func (m *Metrics) Hooks() stream.Hooks {
	return stream.Hooks{
		StreamOpened: func(info stream.StreamInfo) {
			m.streams.WithLabelValues(info.Variant).Inc()
			m.stream(info)
		},
		StreamClosed: func(info stream.StreamInfo, _ error) {
			if sm, ok := m.perStream.LoadAndDelete(info.ID); ok {
				s := sm.(*streamMetrics)
				s.mu.Lock()
				for t := range s.lastRequest {
					m.streamTypes.WithLabelValues(info.Variant, t).Dec()
				}
				s.mu.Unlock()
			}
			m.streams.WithLabelValues(info.Variant).Dec()
		},
		Request: func(info stream.StreamInfo, r stream.Received) {
			t := typeLabel(r.TypeURL)
			m.requests.WithLabelValues(info.Variant, t, r.Kind.String()).Inc()
			s := m.stream(info)
			s.mu.Lock()
			if _, seen := s.lastRequest[t]; !seen {
				m.streamTypes.WithLabelValues(info.Variant, t).Inc()
			}
			s.lastRequest[t] = time.Now()
			s.mu.Unlock()
		},
		Response: func(info stream.StreamInfo, r *stream.Response, sinceCommit time.Duration) {
			t := typeLabel(r.TypeURL)
			m.responses.WithLabelValues(info.Variant, t).Inc()
			m.sent.WithLabelValues(info.Variant, t).Add(float64(len(r.Resources)))
			// A response is a push when its content was committed after the
			// client's newest request of the type; otherwise it answers that
			// request, and the time since the commit says nothing about the server.
			s := m.stream(info)
			s.mu.Lock()
			asked := s.lastRequest[t]
			s.mu.Unlock()
			if time.Now().Add(-sinceCommit).After(asked) {
				m.pushLatency.WithLabelValues(t).Observe(sinceCommit.Seconds())
			}
		},
		ACK: func(info stream.StreamInfo, typeURL, _ string, latency time.Duration) {
			t := typeLabel(typeURL)
			m.acks.WithLabelValues(info.Variant, t).Inc()
			if latency >= 0 && latency < 24*time.Hour { // guards against a missing send time
				m.ackLatency.WithLabelValues(t).Observe(latency.Seconds())
			}
		},
		NACK: func(info stream.StreamInfo, typeURL string, _ stream.NACK) {
			m.nacks.WithLabelValues(info.Variant, typeLabel(typeURL)).Inc()
		},
	}
}

// limitsCollector reads Streams.LimitStats at each scrape: what the xDS
// server's connection and stream limits see.
type limitsCollector struct {
	streams                                  Streams
	connections, refused, awaiting, timedOut *prometheus.Desc
}

func newLimitsCollector(streams Streams) limitsCollector {
	return limitsCollector{
		streams: streams,
		connections: prometheus.NewDesc("leanxds_xds_connections",
			"Open connections to the xDS port.", nil, nil),
		refused: prometheus.NewDesc("leanxds_xds_connections_refused_total",
			"Connections to the xDS port closed as soon as accepted: --max-conns were open.", nil, nil),
		awaiting: prometheus.NewDesc("leanxds_xds_streams_awaiting_first_request",
			"Open xDS streams that have sent no request yet (not counted in leanxds_xds_streams).", nil, nil),
		timedOut: prometheus.NewDesc("leanxds_xds_streams_timed_out_total",
			"xDS streams ended by a timeout: first_request (--first-request-timeout), or send (--send-timeout: the client stopped reading; its connection was closed).",
			[]string{"timeout"}, nil),
	}
}

func (c limitsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connections
	ch <- c.refused
	ch <- c.awaiting
	ch <- c.timedOut
}

func (c limitsCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.streams.LimitStats()
	ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(l.Conns))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(l.ConnsRefused))
	ch <- prometheus.MustNewConstMetric(c.awaiting, prometheus.GaugeValue, float64(l.AwaitingFirstRequest))
	ch <- prometheus.MustNewConstMetric(c.timedOut, prometheus.CounterValue, float64(l.FirstRequestTimeouts), "first_request")
	ch <- prometheus.MustNewConstMetric(c.timedOut, prometheus.CounterValue, float64(l.SendTimeouts), "send")
}

// storeCollector reports what the store holds when scraped: resources by scope
// and type, and the store's revision. Reading a view takes no lock.
//
// A scope and type once reported stays reported: at 0 when the scope no longer
// holds that type, or nothing at all, so that a dashboard or an alert sees the
// drop to zero rather than a series that vanished. What it remembers is
// bounded by the scopes and types the config has held since the process
// started.
type storeCollector struct {
	st                  *store.Store
	resources, revision *prometheus.Desc

	// mu serialises scrapes, which may run at once, over seen.
	mu sync.Mutex
	// seen holds the type labels reported for each scope.
	seen map[string]map[string]bool
}

func newStoreCollector(st *store.Store) *storeCollector {
	return &storeCollector{
		st: st,
		resources: prometheus.NewDesc("leanxds_resources",
			"Resources served, by scope and type; 0 for a type a scope held since the process started and holds no more.", []string{"scope", "type"}, nil),
		revision: prometheus.NewDesc("leanxds_store_revision",
			"Revision of the store: the number of commits that changed it.", nil, nil),
		seen: make(map[string]map[string]bool),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.resources
	ch <- c.revision
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.st.View()
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(v.Revision()))
	counts := make(map[string]map[string]int)
	for _, scope := range v.Scopes() {
		counts[scope] = make(map[string]int)
		for typeURL, t := range v.Tables(scope) {
			// Every type leanxds does not serve shares the label "other".
			counts[scope][typeLabel(typeURL)] += t.Len()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for scope, types := range counts {
		if c.seen[scope] == nil {
			c.seen[scope] = make(map[string]bool)
		}
		for typ := range types {
			c.seen[scope][typ] = true
		}
	}
	for scope, types := range c.seen {
		for typ := range types {
			ch <- prometheus.MustNewConstMetric(c.resources, prometheus.GaugeValue, float64(counts[scope][typ]), scope, typ)
		}
	}
}
