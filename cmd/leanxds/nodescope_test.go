package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
)

// identityStore holds the scopes the identity tests are served: the default
// scope, scope-a, node-a and node-b.
func identityStore(t *testing.T) *store.Store {
	t.Helper()
	st := store.New()
	_, err := st.Commit(
		store.Set("default", xdstest.Secret("default-secret")),
		store.Set("scope-a", xdstest.Secret("a-secret")),
		store.Set("node-a", xdstest.Secret("a-secret")),
		store.Set("node-b", xdstest.Secret("b-secret")),
	)
	require.NoError(t, err)
	return st
}

func identityScopesFor(t *testing.T, st *store.Store, mode, scopeBy, scopeMap string) *identityScopes {
	t.Helper()
	o := &serveOptions{nodeIdentity: mode, scopeBy: scopeBy, scopeMap: scopeMap}
	s, err := newIdentityScopes(o, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return s
}

// Under --node-identity san-uri, a SPIFFE ID names its scope through the scope
// map; an identity the map does not list, or a SPIFFE ID without a map, is
// refused rather than served the default scope.
func TestIdentityScopesSPIFFE(t *testing.T) {
	pki := newTestPKI(t)
	a := peerWith(pki.issue(t, "a", false, "", "spiffe://td/ns/a"))
	x := peerWith(pki.issue(t, "x", false, "", "spiffe://td/ns/x"))
	st := identityStore(t)
	mapFile := filepath.Join(t.TempDir(), "scopes.yaml")
	require.NoError(t, os.WriteFile(mapFile, []byte("spiffe://td/ns/a: scope-a\n"), 0o600))

	ids := identityScopesFor(t, st, identitySANURI, "id", mapFile)
	require.NoError(t, ids.authorize(a, node("spiffe://td/ns/a", "")))
	assert.Equal(t, "scope-a", ids.scope(node("spiffe://td/ns/a", "")))
	err := ids.authorize(x, node("spiffe://td/ns/x", ""))
	assert.ErrorContains(t, err, `identity "spiffe://td/ns/x" has no entry in the scope map `+mapFile)
	assert.ErrorContains(t, ids.authorize(a, node("spiffe://td/ns/x", "")), "does not match the client certificate")

	noMap := identityScopesFor(t, st, identitySANURI, "id", "")
	err = noMap.authorize(a, node("spiffe://td/ns/a", ""))
	assert.ErrorContains(t, err, `identity "spiffe://td/ns/a" cannot name a scope directory (it holds a slash): map it to one with --scope-map`)
}

// Under --node-identity cn, a node is served the scope its common name names,
// whatever --scope-by says: a node whose scope holds nothing is refused, not
// served the default scope, and one that claims another scope (node.cluster,
// metadata) is refused; a node that claims none is served its own.
func TestIdentityScopesClaims(t *testing.T) {
	pki := newTestPKI(t)
	a := peerWith(pki.issue(t, "a", false, "node-a"))
	c := peerWith(pki.issue(t, "c", false, "node-c"))
	st := identityStore(t)

	byCluster := identityScopesFor(t, st, identityCN, "cluster", "")
	require.NoError(t, byCluster.authorize(a, node("node-a", "node-a")))
	require.NoError(t, byCluster.authorize(a, node("node-a", "")))
	assert.Equal(t, "node-a", byCluster.scope(node("node-a", "")))
	err := byCluster.authorize(a, node("node-a", "node-b"))
	assert.ErrorContains(t, err, `node.cluster "node-b" is not the scope of the certificate's identity "node-a", which is "node-a"`)
	err = byCluster.authorize(c, node("node-c", "node-c"))
	assert.ErrorContains(t, err, `scope "node-c" of identity "node-c" holds no resource`)
	err = byCluster.authorize(c, node("node-c", "default"))
	assert.ErrorContains(t, err, `node.cluster "default" is not the scope`)

	byMetadata := identityScopesFor(t, st, identityCN, "metadata:tenant", "")
	withTenant := func(tenant string) *corev3.Node {
		n := node("node-a", "anything")
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"tenant": structpb.NewStringValue(tenant)}}
		return n
	}
	require.NoError(t, byMetadata.authorize(a, withTenant("node-a")))
	assert.ErrorContains(t, byMetadata.authorize(a, withTenant("node-b")), `node.metadata.tenant "node-b" is not the scope`)
}

// The scope map is read again when its file changes; a change that is invalid
// is refused and the previous mapping kept.
func TestScopeMapReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scopes.yaml")
	require.NoError(t, os.WriteFile(path, []byte("# identities to scopes\nspiffe://td/ns/a: scope-a\n"), 0o600))
	m, err := openScopeMap(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	scope, err := m.lookup("spiffe://td/ns/a")
	require.NoError(t, err)
	assert.Equal(t, "scope-a", scope)

	rewrite := func(content string, at time.Time) {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		require.NoError(t, os.Chtimes(path, at, at)) // mtime granularity may hide a quick rewrite
	}
	rewrite("spiffe://td/ns/a: scope-b\n'spiffe://td/ns/c': scope-c\n", time.Now().Add(time.Minute))
	scope, err = m.lookup("spiffe://td/ns/a")
	require.NoError(t, err)
	assert.Equal(t, "scope-b", scope)
	scope, err = m.lookup("spiffe://td/ns/c")
	require.NoError(t, err)
	assert.Equal(t, "scope-c", scope)

	rewrite("spiffe://td/ns/a: [not, a, scope]\n", time.Now().Add(2*time.Minute))
	scope, err = m.lookup("spiffe://td/ns/a")
	require.NoError(t, err)
	assert.Equal(t, "scope-b", scope, "the previous mapping is kept")
}

// A scope map that cannot be used stops serve at start, naming the file, the
// line and the problem.
func TestScopeMapErrors(t *testing.T) {
	cases := []struct{ content, want string }{
		{"- spiffe://td/ns/a\n", ":1: want a mapping of identities to scopes"},
		{"spiffe://td/ns/a: ../etc\n", `:1: identity "spiffe://td/ns/a": scope "../etc" cannot name a scope directory: it holds a slash`},
		{"spiffe://td/ns/a: .hidden\n", `scope ".hidden" cannot name a scope directory: it starts with a dot`},
		{"a: x\nspiffe://td/ns/a:\n", `:2: identity "spiffe://td/ns/a": its scope must be a string`},
		{"a: x\nb: y\na: z\n", `:3: identity "a" is mapped twice`},
		{"a: {b: c}\n", `:1: identity "a": its scope must be a string`},
		{"a: [unclosed\n", "yaml:"},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "scopes.yaml")
		require.NoError(t, os.WriteFile(path, []byte(c.content), 0o600))
		_, err := openScopeMap(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.Error(t, err, c.content)
		assert.Contains(t, err.Error(), "--scope-map: "+path, c.content)
		assert.Contains(t, err.Error(), c.want, c.content)
	}
	_, err := openScopeMap(filepath.Join(t.TempDir(), "missing.yaml"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	assert.ErrorContains(t, err, "no such file")
	_, err = newServer(context.Background(), &serveOptions{configDir: t.TempDir(), scopeBy: "id", nodeIdentity: identityCN,
		scopeMap: filepath.Join(t.TempDir(), "missing.yaml")}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	assert.ErrorContains(t, err, "--scope-map")
}
