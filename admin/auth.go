package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Who may read what every node is served: CSDS on the xDS port, and the
// admin server's /debug/ pages (and POST /reload), which list every node and
// what it is served.
//
//   - A caller presenting the admin token (Options.Token, --admin-token of
//     leanxds serve; HTTP "Authorization: Bearer TOKEN", gRPC metadata
//     "authorization: Bearer TOKEN") reads everything; a wrong token is
//     refused (403, PermissionDenied), whatever else would allow it.
//   - A CSDS caller that presents no token is, when Options.CSDSVisible is
//     set, shown what it decides (leanxds serve --node-identity: a caller
//     whose certificate names a --csds-readers identity reads every node, and
//     any other its own node).
//   - With a token set, any other caller is refused (401, Unauthenticated).
//   - Without one, only callers on this host (a loopback address) read them:
//     the xDS port is usually open to the network, and the admin port may be.

// adminToken checks a bearer token against the admin token.
type adminToken struct {
	// sum is the SHA-256 of the token; comparing digests takes the same time
	// whatever the token presented, its length included.
	sum [sha256.Size]byte
	set bool
}

func newAdminToken(token string) adminToken {
	if token == "" {
		return adminToken{}
	}
	return adminToken{sum: sha256.Sum256([]byte(token)), set: true}
}

// accessDecision is what a caller may read of the node listings.
type accessDecision int

const (
	accessAll          accessDecision = iota // the right token, or a local caller without --admin-token
	accessNoToken                            // --admin-token is set, and the caller presented none
	accessWrongToken                         // a token that is not --admin-token (or none is set)
	accessNotLocal                           // no --admin-token, and the caller is not on this host
	accessUndetermined                       // no token presented: another rule decides (--node-identity)
)

// decide applies the token rules to what a caller presented: header is the
// value of its Authorization header ("" for none), local whether it called
// from a loopback address.
func (t adminToken) decide(header string, local bool) accessDecision {
	if header != "" {
		scheme, token, ok := strings.Cut(header, " ")
		if !t.set || !ok || !strings.EqualFold(scheme, "Bearer") {
			return accessWrongToken
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) != 1 {
			return accessWrongToken
		}
		return accessAll
	}
	switch {
	case t.set:
		return accessNoToken
	case local:
		return accessAll
	}
	return accessNotLocal
}

// explain is what a refused caller is told.
func (d accessDecision) explain(what string) string {
	switch d {
	case accessNoToken:
		return what + " needs the admin token (--admin-token): send it as \"authorization: Bearer TOKEN\""
	case accessWrongToken:
		return what + ": the authorization is not the admin token (--admin-token) of this server, or it has none"
	case accessNotLocal:
		return what + " is open to callers on this host only, since --admin-token is not set"
	}
	return ""
}

// csdsAccess returns csdsServer.visible: the token rules, then, for a caller
// that presents no token, nodes (the --node-identity rule) if set.
func csdsAccess(token adminToken, nodes func(context.Context) (func(string) bool, error)) func(context.Context) (func(string) bool, error) {
	all := func(string) bool { return true }
	return func(ctx context.Context) (func(string) bool, error) {
		var header string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				header = v[0]
			}
		}
		d := token.decide(header, peerIsLocal(ctx))
		if header == "" && nodes != nil {
			d = accessUndetermined
		}
		switch d {
		case accessAll:
			return all, nil
		case accessUndetermined:
			return nodes(ctx)
		case accessNoToken:
			return nil, status.Error(codes.Unauthenticated, d.explain("CSDS"))
		}
		return nil, status.Error(codes.PermissionDenied, d.explain("CSDS"))
	}
}

// peerIsLocal reports whether the gRPC call in ctx comes from a loopback address.
func peerIsLocal(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	a, ok := p.Addr.(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// requireAdmin guards an admin page that lists nodes or what they are served
// with the token rules.
func requireAdmin(token adminToken, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := token.decide(r.Header.Get("Authorization"), remoteIsLocal(r.RemoteAddr))
		switch d {
		case accessAll:
			h.ServeHTTP(w, r)
			return
		case accessNoToken:
			w.Header().Set("WWW-Authenticate", `Bearer realm="leanxds admin"`)
			writeJSONError(w, http.StatusUnauthorized, "%s", d.explain(r.URL.Path))
			return
		}
		writeJSONError(w, http.StatusForbidden, "%s", d.explain(r.URL.Path))
	})
}

// remoteIsLocal reports whether an HTTP request's remote address is a loopback
// address.
func remoteIsLocal(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String says how the debug pages are guarded, for the startup log.
func (t adminToken) String() string {
	if t.set {
		return "admin token"
	}
	return "callers on this host only"
}
