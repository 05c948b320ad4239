package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// histogramCount returns how many observations a histogram of the registry
// holds for the given type label.
func histogramCount(t *testing.T, m *Metrics, name, typ string) uint64 {
	t.Helper()
	families, err := m.reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == typ {
					return s.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// The hooks count streams, requests, responses, ACKs and NACKs by variant and
// type; push latency counts pushes after a commit, not answers to requests.
func TestMetricsFromHooks(t *testing.T) {
	ts := startTestServer(t)
	m := ts.metrics
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	c.Request(protocol.TypeCluster).ExpectResponse()
	c.ACK()
	c.Request(protocol.TypeEndpoint, "web").ExpectResponse()
	c.ACK()
	eventually(t, "the ACKs", func() bool { return testutil.ToFloat64(m.acks.WithLabelValues("sotw", "EDS")) == 1 })

	assert.Equal(t, 1.0, testutil.ToFloat64(m.streams.WithLabelValues("sotw")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.streamTypes.WithLabelValues("sotw", "CDS")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.streamTypes.WithLabelValues("sotw", "EDS")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("sotw", "CDS", "subscribe")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("sotw", "CDS", "ack")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.responses.WithLabelValues("sotw", "CDS")))
	assert.Equal(t, 3.0, testutil.ToFloat64(m.sent.WithLabelValues("sotw", "CDS")))
	assert.Equal(t, uint64(1), histogramCount(t, m, "leanxds_xds_ack_latency_seconds", "EDS"))
	assert.Zero(t, histogramCount(t, m, "leanxds_xds_push_latency_seconds", "EDS"), "an answer to a subscription is not a push")

	// An edit is pushed: push latency is observed, and the client's NACK counted.
	_, err := ts.st.Commit(store.Set("default", xdstest.Endpoints("web", "127.0.0.1:9081")))
	require.NoError(t, err)
	c.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names("web"))
	c.NACK("no such port")
	eventually(t, "the NACK", func() bool { return testutil.ToFloat64(m.nacks.WithLabelValues("sotw", "EDS")) == 1 })
	assert.Equal(t, uint64(1), histogramCount(t, m, "leanxds_xds_push_latency_seconds", "EDS"))

	// A type leanxds does not serve is labelled "other", whatever its URL.
	c.Request("type.googleapis.com/made.up.Type").ExpectResponse()
	eventually(t, "the unknown type", func() bool {
		return testutil.ToFloat64(m.streamTypes.WithLabelValues("sotw", otherType)) == 1
	})

	// Closing the stream takes it out of the gauges.
	ts.xds.Shutdown()
	eventually(t, "the stream to close", func() bool { return testutil.ToFloat64(m.streams.WithLabelValues("sotw")) == 0 })
	assert.Equal(t, 0.0, testutil.ToFloat64(m.streamTypes.WithLabelValues("sotw", "CDS")))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.streamTypes.WithLabelValues("sotw", otherType)))
}

// Reloaded counts reloads by outcome, every outcome from the start; a
// rejected or held one clears leanxds_config_last_reload_successful, and only
// one that changed the store counts a commit.
func TestMetricsReloaded(t *testing.T) {
	ts := startTestServer(t)
	for _, r := range []string{ReloadApplied, ReloadUnchanged, ReloadRejected, ReloadHeld} {
		assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_config_reloads_total{result="`+r+`"}`), r)
	}
	m := ts.metrics
	m.Reloaded(ReloadApplied, true)
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, "leanxds_config_last_reload_successful"))
	assert.Greater(t, metric(t, ts.admin.URL, "leanxds_config_last_applied_timestamp_seconds"), 0.0)
	m.Reloaded(ReloadRejected, false)
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, "leanxds_config_last_reload_successful"))
	m.Reloaded(ReloadUnchanged, false)
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, "leanxds_config_last_reload_successful"))
	m.Reloaded(ReloadHeld, false)
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, "leanxds_config_last_reload_successful"))
	for _, r := range []string{ReloadApplied, ReloadUnchanged, ReloadRejected, ReloadHeld} {
		assert.Equal(t, 1.0, metric(t, ts.admin.URL, `leanxds_config_reloads_total{result="`+r+`"}`), r)
	}
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, "leanxds_store_commits_total"))
}

// The source's held reload and staleness are gauges, read when scraped.
func TestMetricsSource(t *testing.T) {
	ts := startTestServer(t)
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, "leanxds_config_reload_held"))
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, "leanxds_config_source_stale"))
	ts.source.set(func(st *SourceStatus) {
		st.Held = &HeldReload{At: time.Now()}
		st.Stale = "the directory does not exist"
	})
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, "leanxds_config_reload_held"))
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, "leanxds_config_source_stale"))
}

// The store collector reports resources by scope and type, and the streams'
// limits what they see.
func TestMetricsResources(t *testing.T) {
	ts := startTestServer(t)
	_, err := ts.st.Commit(store.Set("team-a", xdstest.Cluster("web")))
	require.NoError(t, err)
	n, err := testutil.GatherAndCount(ts.metrics.reg, "leanxds_resources")
	require.NoError(t, err)
	assert.Equal(t, 6, n, "five types in default, one in team-a")
	assert.NoError(t, testutil.GatherAndCompare(ts.metrics.reg, strings.NewReader(`
# HELP leanxds_store_revision Revision of the store: the number of commits that changed it.
# TYPE leanxds_store_revision gauge
leanxds_store_revision 2
`), "leanxds_store_revision"))

	conv.ADS(t, ts.cc, node("envoy-1", "edge")).Request(protocol.TypeCluster).ExpectResponse()
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, "leanxds_xds_connections"))
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_xds_streams_timed_out_total{timeout="send"}`))
}

// The metrics' names and labels are what dashboards and alerts query: this
// list changes only with them.
func TestMetricNamesAndLabels(t *testing.T) {
	ts := startTestServer(t)
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	c.Request(protocol.TypeCluster).ExpectResponse()
	c.NACK("no")
	eventually(t, "the NACK", func() bool { return testutil.ToFloat64(ts.metrics.nacks.WithLabelValues("sotw", "CDS")) == 1 })
	_, err := ts.st.Commit(store.Set("default", xdstest.Cluster("new")))
	require.NoError(t, err)
	c.ExpectResponse(conv.Names("api", "new", "payments", "web"))
	c.ACK()
	eventually(t, "the ACK", func() bool { return testutil.ToFloat64(ts.metrics.acks.WithLabelValues("sotw", "CDS")) == 1 })

	families, err := ts.metrics.reg.Gather()
	require.NoError(t, err)
	got := map[string][]string{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "leanxds_") {
			continue
		}
		labels := []string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		got[f.GetName()] = labels
	}
	assert.Equal(t, map[string][]string{
		"leanxds_xds_streams":                           {"variant"},
		"leanxds_xds_stream_types":                      {"type", "variant"},
		"leanxds_xds_requests_total":                    {"kind", "type", "variant"},
		"leanxds_xds_responses_total":                   {"type", "variant"},
		"leanxds_xds_resources_sent_total":              {"type", "variant"},
		"leanxds_xds_acks_total":                        {"type", "variant"},
		"leanxds_xds_nacks_total":                       {"type", "variant"},
		"leanxds_xds_push_latency_seconds":              {"type"},
		"leanxds_xds_ack_latency_seconds":               {"type"},
		"leanxds_xds_connections":                       {},
		"leanxds_xds_connections_refused_total":         {},
		"leanxds_xds_streams_awaiting_first_request":    {},
		"leanxds_xds_streams_timed_out_total":           {"timeout"},
		"leanxds_config_reloads_total":                  {"result"},
		"leanxds_build_info":                            {"commit", "go_version", "version"},
		"leanxds_config_last_reload_successful":         {},
		"leanxds_config_last_applied_timestamp_seconds": {},
		"leanxds_config_reload_held":                    {},
		"leanxds_config_source_stale":                   {},
		"leanxds_store_commits_total":                   {},
		"leanxds_store_revision":                        {},
		"leanxds_resources":                             {"scope", "type"},
	}, got)
}

// Every series whose labels are known starts at 0, so that increase() and an
// alert on it see the first NACK, the first ACK and the first rejected reload.
func TestMetricsStartAtZero(t *testing.T) {
	ts := startTestServer(t)
	for _, variant := range []string{"sotw", "delta"} {
		assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_xds_streams{variant="`+variant+`"}`), variant)
		for _, typ := range protocol.Types() {
			labels := `{type="` + typ.Short + `",variant="` + variant + `"}`
			for _, name := range []string{"leanxds_xds_nacks_total", "leanxds_xds_acks_total", "leanxds_xds_responses_total",
				"leanxds_xds_resources_sent_total", "leanxds_xds_stream_types"} {
				assert.Equal(t, 0.0, metric(t, ts.admin.URL, name+labels), name+labels)
			}
			for _, kind := range []string{"subscribe", "ack", "nack", "stale"} {
				sample := `leanxds_xds_requests_total{kind="` + kind + `",type="` + typ.Short + `",variant="` + variant + `"}`
				assert.Equal(t, 0.0, metric(t, ts.admin.URL, sample), sample)
			}
		}
	}
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_config_reloads_total{result="rejected"}`))

	// The first NACK moves its series from 0 to 1: increase() sees it.
	c := conv.ADS(t, ts.cc, node("envoy-1", "edge"))
	c.Request(protocol.TypeCluster).ExpectResponse()
	c.NACK("no")
	eventually(t, "the NACK", func() bool {
		return metric(t, ts.admin.URL, `leanxds_xds_nacks_total{type="CDS",variant="sotw"}`) == 1
	})
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_xds_nacks_total{type="CDS",variant="delta"}`))
}

// A type a scope no longer holds is reported at 0, and so is every type of a
// scope that emptied, instead of vanishing from /metrics.
func TestMetricsResourcesDropToZero(t *testing.T) {
	ts := startTestServer(t)
	_, err := ts.st.Commit(store.Set("team-a", xdstest.Cluster("web")), store.Set("team-a", xdstest.Endpoints("web", "127.0.0.1:9080")))
	require.NoError(t, err)
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="CDS"}`))
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="EDS"}`))
	assert.Equal(t, -1.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="LDS"}`), "a type never held is not reported")

	_, err = ts.st.Commit(store.Delete("team-a", protocol.TypeEndpoint, "web"))
	require.NoError(t, err)
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="CDS"}`))
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="EDS"}`))

	_, err = ts.st.Commit(store.Delete("team-a", protocol.TypeCluster, "web"))
	require.NoError(t, err)
	require.False(t, ts.st.View().HasScope("team-a"))
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="CDS"}`))
	assert.Equal(t, 0.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="EDS"}`))

	// Back again, it is counted again.
	_, err = ts.st.Commit(store.Set("team-a", xdstest.Cluster("api")))
	require.NoError(t, err)
	assert.Equal(t, 1.0, metric(t, ts.admin.URL, `leanxds_resources{scope="team-a",type="CDS"}`))
}
