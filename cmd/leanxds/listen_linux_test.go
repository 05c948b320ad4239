package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The xDS port's socket carries TCP_USER_TIMEOUT, and the connections it
// accepts inherit it: grpc-go cannot set it on a connection that
// stream.Server.Listener wraps.
func TestListenSetsUserTimeout(t *testing.T) {
	lc := listenConfig(keepaliveTimeout)
	lis, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	client, err := net.Dial("tcp", lis.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	c, err := lis.Accept()
	require.NoError(t, err)
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var ms int
	var serr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		ms, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}))
	require.NoError(t, serr)
	assert.Equal(t, keepaliveTimeout, time.Duration(ms)*time.Millisecond)
}
