package main

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listenConfig returns a net.ListenConfig whose sockets carry TCP_USER_TIMEOUT
// d: data unacknowledged for d closes the connection (the peer is gone).
func listenConfig(d time.Duration) net.ListenConfig {
	return net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
		})
		if err != nil {
			return err
		}
		return serr
	}}
}
