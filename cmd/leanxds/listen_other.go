//go:build !linux

package main

import (
	"net"
	"time"
)

// listenConfig returns the default net.ListenConfig: TCP_USER_TIMEOUT is a
// Linux socket option.
func listenConfig(time.Duration) net.ListenConfig { return net.ListenConfig{} }
