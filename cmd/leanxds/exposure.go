package main

import (
	"log/slog"
	"net"
	"net/netip"
)

// defaultAdminAddr is the admin server's default address: not Envoy's admin
// port 9901, since operators run Envoy and leanxds on one host, nor the ports
// around the xDS port 18000 that Envoy Gateway takes (18001, 18002) or those
// Envoy deployments commonly give their admin (9901, 15000, 19000): 18100,
// the xDS port plus one hundred.
const defaultAdminAddr = "127.0.0.1:18100"

// reachable reports whether a listener's address takes connections from other
// hosts: any address but a loopback one (0.0.0.0 and :: take them from all).
func reachable(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		// Not an IP address and port (a Unix socket...): not on the network.
		return false
	}
	return !ap.Addr().Unmap().IsLoopback()
}

// warnExposedXDS warns when the xDS port takes plaintext connections from other
// hosts: any of them may then read every scope's resources, secrets included,
// and what a client is served crosses the network in clear.
func warnExposedXDS(log *slog.Logger, addr net.Addr, tls bool) {
	if tls || !reachable(addr) {
		return
	}
	log.Warn("the xDS port takes connections from other hosts without TLS: anyone who reaches it can read every scope's resources, secrets included, in clear; serve TLS (--tls-cert, --tls-key, and --client-ca with --node-identity) or listen on a loopback address",
		"addr", addr.String())
}

// warnExposedAdmin warns when the admin server takes connections from other
// hosts in plain HTTP: its metrics and probes answer anyone, and the admin
// token crosses the network in clear. Over TLS (--admin-tls-cert) it does not.
func warnExposedAdmin(log *slog.Logger, addr net.Addr, token, tls bool) {
	if tls || !reachable(addr) {
		return
	}
	guard := "the /debug/ pages answer callers on this host only (--admin-token lets others in)"
	if token {
		guard = "the /debug/ pages and the mutating endpoints require the admin token, sent in clear"
	}
	log.Warn("the admin server takes connections from other hosts: it speaks plain HTTP (--admin-tls-cert serves HTTPS), /metrics and the probes answer anyone, and "+guard+"; keep it on a private network",
		"addr", addr.String())
}
