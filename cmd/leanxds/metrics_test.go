package main

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
)

// histogramCount returns how many observations a histogram of the registry
// holds for the given type label.
func histogramCount(t *testing.T, m *metrics, name, typ string) uint64 {
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
	ts := startTestServer(t, copyExample(t, "edge"))
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
	editFile(t, ts.dir, "endpoints.yaml", "port_value: 8081", "port_value: 9081")
	_, err := ts.source.Reload(context.Background(), false)
	require.NoError(t, err)
	c.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names("web"))
	c.NACK("no such port")
	eventually(t, "the NACK", func() bool { return testutil.ToFloat64(m.nacks.WithLabelValues("sotw", "EDS")) == 1 })
	assert.Equal(t, uint64(1), histogramCount(t, m, "leanxds_xds_push_latency_seconds", "EDS"))
	// The initial load and the edit.
	assert.Equal(t, 2.0, testutil.ToFloat64(m.reloads.WithLabelValues(reloadApplied)))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.commits))

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

// The store collector reports resources by scope and type.
func TestMetricsResources(t *testing.T) {
	dir := copyExample(t, "edge")
	writeFile(t, dir, "team-a/web.yaml", cluster("web", "1s"))
	ts := startTestServer(t, dir)
	n, err := testutil.GatherAndCount(ts.metrics.reg, "leanxds_resources")
	require.NoError(t, err)
	assert.Equal(t, 6, n, "five types in default, one in team-a")
	assert.NoError(t, testutil.GatherAndCompare(ts.metrics.reg, strings.NewReader(`
# HELP leanxds_store_revision Revision of the store: the number of commits that changed it.
# TYPE leanxds_store_revision gauge
leanxds_store_revision 1
`), "leanxds_store_revision"))
}
