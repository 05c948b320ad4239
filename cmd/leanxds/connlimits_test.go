package main

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/admin"
)

// The operating limits have flags with defaults, and LEANXDS_* variables; 0
// turns a limit off, which stream.Options says with a negative value.
func TestConnLimitFlags(t *testing.T) {
	c, o := serveCommand(&bytes.Buffer{})
	require.NoError(t, c.parse(nil, func(string) (string, bool) { return "", false }))
	assert.Equal(t, 10_000, o.maxConns)
	assert.Equal(t, 100, o.maxStreamsPerConn)
	assert.Equal(t, 30*time.Second, o.firstRequestTimeout)
	assert.Equal(t, time.Minute, o.sendTimeout)

	env := map[string]string{"LEANXDS_MAX_CONNS": "0", "LEANXDS_MAX_STREAMS_PER_CONN": "8",
		"LEANXDS_FIRST_REQUEST_TIMEOUT": "5s", "LEANXDS_SEND_TIMEOUT": "0"}
	c, o = serveCommand(&bytes.Buffer{})
	require.NoError(t, c.parse([]string{"--max-streams-per-conn", "4"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	assert.Equal(t, 0, o.maxConns)
	assert.Equal(t, 4, o.maxStreamsPerConn, "the command line wins")
	assert.Equal(t, 5*time.Second, o.firstRequestTimeout)
	assert.Equal(t, -1, off(o.maxConns))
	assert.Equal(t, time.Duration(-1), off(o.sendTimeout))
	assert.Equal(t, 4, off(o.maxStreamsPerConn))

	code, _, stderr := runArgs(t, nil, "serve", "--config", "x", "--send-timeout", "-1s")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "must not be negative")
}

// A stream that sends no request is shown on /debug/clients and counted while it
// waits, then ended by --first-request-timeout; a connection past --max-conns is
// closed at once and counted.
func TestServeOperatingLimits(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) {
		o.maxConns = 1
		o.firstRequestTimeout = 500 * time.Millisecond
	})
	s, err := ts.cc.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
	require.NoError(t, err)
	var page admin.ClientsPage
	eventually(t, "the silent stream on /debug/clients", func() bool {
		getJSON(t, ts.admin.URL, "/debug/clients", &page)
		return len(page.Clients) == 1
	})
	clients := page.Clients
	assert.True(t, clients[0].AwaitingFirstRequest)
	assert.Equal(t, "ads", clients[0].Service)
	assert.Empty(t, clients[0].NodeID)
	limits := ts.metrics.Registry()
	assert.NoError(t, testutil.GatherAndCompare(limits, strings.NewReader(`
# HELP leanxds_xds_connections Open connections to the xDS port.
# TYPE leanxds_xds_connections gauge
leanxds_xds_connections 1
# HELP leanxds_xds_streams_awaiting_first_request Open xDS streams that have sent no request yet (not counted in leanxds_xds_streams).
# TYPE leanxds_xds_streams_awaiting_first_request gauge
leanxds_xds_streams_awaiting_first_request 1
`), "leanxds_xds_connections", "leanxds_xds_streams_awaiting_first_request"))

	// A second connection, past --max-conns.
	refused, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer refused.Close()
	require.NoError(t, refused.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = refused.Read(make([]byte, 1))
	assert.Error(t, err, "the connection past the limit was served")
	assert.False(t, isTimeout(err), "the connection past the limit was left open: %v", err)

	err = s.RecvMsg(new(discoveryv3.DiscoveryResponse))
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	assert.NoError(t, testutil.GatherAndCompare(limits, strings.NewReader(`
# HELP leanxds_xds_connections_refused_total Connections to the xDS port closed as soon as accepted: --max-conns were open.
# TYPE leanxds_xds_connections_refused_total counter
leanxds_xds_connections_refused_total 1
# HELP leanxds_xds_streams_awaiting_first_request Open xDS streams that have sent no request yet (not counted in leanxds_xds_streams).
# TYPE leanxds_xds_streams_awaiting_first_request gauge
leanxds_xds_streams_awaiting_first_request 0
# HELP leanxds_xds_streams_timed_out_total xDS streams ended by a timeout: first_request (--first-request-timeout), or send (--send-timeout: the client stopped reading; its connection was closed).
# TYPE leanxds_xds_streams_timed_out_total counter
leanxds_xds_streams_timed_out_total{timeout="first_request"} 1
leanxds_xds_streams_timed_out_total{timeout="send"} 0
`), "leanxds_xds_connections_refused_total", "leanxds_xds_streams_awaiting_first_request", "leanxds_xds_streams_timed_out_total"))
	getJSON(t, ts.admin.URL, "/debug/clients", &page)
	assert.Empty(t, page.Clients)
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}
