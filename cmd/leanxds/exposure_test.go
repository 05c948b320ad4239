package main

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A listener is reachable from other hosts unless it is on a loopback address.
func TestReachable(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:18000":         false,
		"127.0.0.2:18000":         false,
		"[::1]:18000":             false,
		"[::ffff:127.0.0.1]:1":    false,
		"0.0.0.0:18000":           true,
		"[::]:18000":              true,
		"10.1.2.3:18000":          true,
		"[fe80::1%eth0]:18000":    true,
		"[2001:db8::1]:18000":     true,
		"192.168.1.10:18100":      true,
		"/run/leanxds/admin.sock": false,
	} {
		var a net.Addr
		if strings.HasPrefix(addr, "/") {
			a = &net.UnixAddr{Name: addr, Net: "unix"}
		} else {
			ap, err := net.ResolveTCPAddr("tcp", addr)
			if !assert.NoError(t, err, addr) {
				continue
			}
			a = ap
		}
		assert.Equal(t, want, reachable(a), addr)
	}
}

// At start, serve warns about an xDS port open to other hosts without TLS, and
// about an admin server open to other hosts, and about nothing on loopback.
func TestExposureWarnings(t *testing.T) {
	logged := func(f func(log *slog.Logger)) string {
		var b bytes.Buffer
		f(slog.New(slog.NewTextHandler(&b, nil)))
		return b.String()
	}
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 18000}
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 18000}

	out := logged(func(log *slog.Logger) { warnExposedXDS(log, any4, false) })
	assert.Contains(t, out, "level=WARN")
	assert.Contains(t, out, "without TLS")
	assert.Contains(t, out, "--tls-cert")
	assert.Contains(t, out, "addr=0.0.0.0:18000")
	assert.Empty(t, logged(func(log *slog.Logger) { warnExposedXDS(log, any4, true) }), "TLS")
	assert.Empty(t, logged(func(log *slog.Logger) { warnExposedXDS(log, loop, false) }), "loopback")

	out = logged(func(log *slog.Logger) {
		warnExposedAdmin(log, &net.TCPAddr{IP: net.IPv6unspecified, Port: 18100}, false, false)
	})
	assert.Contains(t, out, "level=WARN")
	assert.Contains(t, out, "plain HTTP")
	assert.Contains(t, out, "callers on this host only")
	assert.Contains(t, out, "addr=[::]:18100")
	out = logged(func(log *slog.Logger) {
		warnExposedAdmin(log, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 18100}, true, false)
	})
	assert.Contains(t, out, "require the admin token, sent in clear")
	assert.Empty(t, logged(func(log *slog.Logger) {
		warnExposedAdmin(log, &net.TCPAddr{IP: net.IPv6loopback, Port: 18100}, false, false)
	}))
	assert.Empty(t, logged(func(log *slog.Logger) {
		warnExposedAdmin(log, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 18100}, true, true)
	}), "over TLS")
}

// The admin server's default address is on loopback, and is not Envoy's admin
// port: serve and reload agree on it.
func TestDefaultAdminAddr(t *testing.T) {
	ap, err := net.ResolveTCPAddr("tcp", defaultAdminAddr)
	assert.NoError(t, err)
	assert.False(t, reachable(ap))
	assert.NotEqual(t, 9901, ap.Port, "Envoy's admin port")
	for _, cmd := range []string{"serve", "reload"} {
		code, stdout, stderr := runArgs(t, nil, cmd, "--help")
		assert.Equal(t, 0, code)
		assert.Contains(t, stdout+stderr, `(default "`+defaultAdminAddr+`")`, cmd)
	}
}
