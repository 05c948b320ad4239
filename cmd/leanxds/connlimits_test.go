package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
