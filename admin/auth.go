package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Who may read what every node is served: CSDS on the xDS port, and the
// admin server's /debug/ pages, which list every node and what it is served.
//
//   - A caller presenting the admin token (Options.Token or the content of
//     Options.TokenFile, --admin-token or --admin-token-file of leanxds
//     serve; HTTP "Authorization: Bearer TOKEN", gRPC metadata
//     "authorization: Bearer TOKEN") reads everything; a wrong token is
//     refused (403, PermissionDenied), whatever else would allow it.
//   - An admin HTTP caller whose client certificate the admin port verified
//     (Options.ClientCertificates: --admin-client-ca) reads everything.
//   - A CSDS caller that presents no token is, when Options.CSDSVisible is
//     set, shown what it decides (leanxds serve --node-identity: a caller
//     whose certificate names a --csds-readers identity reads every node, and
//     any other its own node).
//   - With a token set, any other caller is refused (401, Unauthenticated).
//   - Without one, only callers on this host (a loopback address) read them:
//     the xDS port is usually open to the network, and the admin port may be.
//
// Who may change anything: POST /reload, /admin/rollout/promote,
// /admin/rollout/abort and /admin/rollback (requireMutation). Being on this
// host is not enough: any local process, a browser's included, is.
//
//   - The caller presents the admin token, or a client certificate the admin
//     port verified; a wrong token is refused (403).
//   - No credentials: 401.
//   - Neither a token nor client certificates configured: every mutating
//     endpoint answers 403, saying how to turn them on (mutationsOff).

// mutationsOff is the answer of a mutating endpoint of a server configured
// with neither a token nor client certificates.
const mutationsOff = "mutating admin endpoints are off: configure --admin-token-file or --admin-client-ca"

// adminToken checks a bearer token against the admin token: the one given,
// or the one in a file, read again when the file changes.
type adminToken struct {
	// sum is the SHA-256 of the token given; comparing digests takes the same
	// time whatever the token presented, its length included.
	sum [sha256.Size]byte
	set bool
	// file, if not nil, holds a token accepted as well.
	file *tokenFile
}

func newAdminToken(token, file string) *adminToken {
	t := &adminToken{}
	if token != "" {
		t.sum, t.set = sha256.Sum256([]byte(token)), true
	}
	if file != "" {
		t.file = &tokenFile{path: file}
		t.file.current() // read it now: a bad file is logged at start by its reader
	}
	return t
}

// configured reports whether a token is set, given or in a file. A token
// file configured counts even while it is empty or unreadable: its absence
// must not open the pages to every local caller.
func (t *adminToken) configured() bool { return t.set || t.file != nil }

// matches reports whether token is the admin token.
func (t *adminToken) matches(token string) bool {
	sum := sha256.Sum256([]byte(token))
	ok := t.set && subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1
	if t.file != nil {
		if fsum, set := t.file.current(); set && subtle.ConstantTimeCompare(sum[:], fsum[:]) == 1 {
			ok = true
		}
	}
	return ok
}

// tokenFile is a token kept in a file (--admin-token-file): its first line,
// trimmed. The file is stat'ed at each check and read again when its size or
// modification time changed, so a rotated token takes effect without a
// restart. A file that is gone or cannot be read holds no token: deleting it
// (or unmounting the secret that held it) revokes the token, and the
// mutating endpoints refuse every caller until a file is there again.
type tokenFile struct {
	path string

	mu    sync.Mutex
	stamp struct {
		size int64
		mod  time.Time
	}
	sum  [sha256.Size]byte
	set  bool
	read bool
}

// current returns the digest of the file's token; set is false while the
// file holds none (or was never read).
func (f *tokenFile) current() (sum [sha256.Size]byte, set bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err == nil && f.read && fi.Size() == f.stamp.size && fi.ModTime().Equal(f.stamp.mod) {
		return f.sum, f.set
	}
	var token string
	if err == nil {
		token, err = ReadTokenFile(f.path)
	}
	if err != nil {
		// Gone or unreadable: it holds no token (fail closed), and is read
		// again once it can be.
		f.read, f.set, f.sum = false, false, [sha256.Size]byte{}
		return f.sum, false
	}
	f.read = true
	f.stamp.size, f.stamp.mod = fi.Size(), fi.ModTime()
	f.set = token != ""
	f.sum = sha256.Sum256([]byte(token))
	return f.sum, f.set
}

// ReadTokenFile returns the token a token file holds: its first line, without
// surrounding white space. What the admin server and leanxds's commands read
// from --admin-token-file.
func ReadTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(line), nil
}

// accessDecision is what a caller may read of the node listings.
type accessDecision int

const (
	accessAll          accessDecision = iota // the right token, a verified client certificate, or a local caller without --admin-token
	accessNoToken                            // --admin-token is set, and the caller presented none
	accessWrongToken                         // a token that is not --admin-token (or none is set)
	accessNotLocal                           // no --admin-token, and the caller is not on this host
	accessUndetermined                       // no token presented: another rule decides (--node-identity)
)

// decide applies the token rules to what a caller presented: header is the
// value of its Authorization header ("" for none), local whether it called
// from a loopback address.
func (t *adminToken) decide(header string, local bool) accessDecision {
	if header != "" {
		scheme, token, ok := strings.Cut(header, " ")
		if !t.configured() || !ok || !strings.EqualFold(scheme, "Bearer") || !t.matches(strings.TrimSpace(token)) {
			return accessWrongToken
		}
		return accessAll
	}
	switch {
	case t.configured():
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
func csdsAccess(token *adminToken, nodes func(context.Context) (func(string) bool, error)) func(context.Context) (func(string) bool, error) {
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

// adminAuth is how the admin HTTP server knows its callers: the admin token,
// and whether the admin port verifies client certificates.
type adminAuth struct {
	token *adminToken
	// clientCerts is Options.ClientCertificates: a client certificate the
	// admin port verified is a credential.
	clientCerts bool
}

// verifiedClient reports whether r came with a client certificate the admin
// port verified.
func (a adminAuth) verifiedClient(r *http.Request) bool {
	return a.clientCerts && r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// requireAdmin guards an admin page that lists nodes or what they are served
// with the token rules; a verified client certificate reads it too.
func requireAdmin(auth adminAuth, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		d := auth.token.decide(header, remoteIsLocal(r.RemoteAddr))
		if header == "" && auth.verifiedClient(r) {
			d = accessAll
		}
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

// requireMutation guards an endpoint that changes what is served: it answers
// callers presenting the admin token or a verified client certificate, and
// nobody when neither is configured. It also refuses browsers' cross-origin
// requests, so that a web page cannot make a browser that holds a client
// certificate call it.
func requireMutation(auth adminAuth, h http.Handler) http.Handler {
	h = http.NewCrossOriginProtection().Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.token.configured() && !auth.clientCerts {
			writeJSONError(w, http.StatusForbidden, "%s", mutationsOff)
			return
		}
		header := r.Header.Get("Authorization")
		switch {
		case header != "":
			if d := auth.token.decide(header, false); d != accessAll {
				writeJSONError(w, http.StatusForbidden, "%s", d.explain(r.URL.Path))
				return
			}
		case !auth.verifiedClient(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="leanxds admin"`)
			writeJSONError(w, http.StatusUnauthorized, "%s changes what is served: it needs %s", r.URL.Path, auth.credentials())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// credentials names what a mutating endpoint accepts, for its 401.
func (a adminAuth) credentials() string {
	switch {
	case a.token.configured() && a.clientCerts:
		return "the admin token (\"Authorization: Bearer TOKEN\") or a client certificate signed by --admin-client-ca"
	case a.clientCerts:
		return "a client certificate signed by --admin-client-ca"
	}
	return "the admin token (--admin-token-file or --admin-token): send it as \"Authorization: Bearer TOKEN\""
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
func (a adminAuth) String() string {
	switch {
	case a.token.configured() && a.clientCerts:
		return "admin token or client certificate"
	case a.token.configured():
		return "admin token"
	case a.clientCerts:
		return "client certificate, or callers on this host"
	}
	return "callers on this host only"
}

// mutations says how the mutating endpoints are guarded, for the startup log.
func (a adminAuth) mutations() string {
	switch {
	case a.token.configured() && a.clientCerts:
		return "admin token or client certificate"
	case a.token.configured():
		return "admin token"
	case a.clientCerts:
		return "client certificate"
	}
	return "off (" + mutationsOff[len("mutating admin endpoints are off: "):] + ")"
}
