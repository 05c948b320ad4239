package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// peerWith is a call context whose client presented cert, verified.
func peerWith(cert *x509.Certificate) context.Context {
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: info})
}

func TestCertIdentities(t *testing.T) {
	pki := newTestPKI(t)
	cert := pki.issue(t, "envoy", false, "envoy-cn", "spiffe://leanxds/node/envoy-1")
	cert.DNSNames = []string{"envoy-1.example"}
	assert.Equal(t, []string{"spiffe://leanxds/node/envoy-1"}, certIdentities(cert, identitySANURI))
	assert.Equal(t, []string{"envoy-1.example"}, certIdentities(cert, identitySANDNS))
	assert.Equal(t, []string{"envoy-cn"}, certIdentities(cert, identityCN))
}

// A node may only claim the id its certificate names; a call without a verified
// certificate is refused.
func TestNodeAuthorizer(t *testing.T) {
	pki := newTestPKI(t)
	cert := pki.issue(t, "envoy", false, "envoy-cn", "spiffe://leanxds/node/envoy-1")
	auth := nodeAuthorizer(identitySANURI)
	assert.NoError(t, auth(peerWith(cert), node("spiffe://leanxds/node/envoy-1", "edge")))
	err := auth(peerWith(cert), node("spiffe://leanxds/node/envoy-2", "edge"))
	assert.ErrorContains(t, err, "does not match the client certificate")
	assert.ErrorContains(t, auth(context.Background(), node("x", "edge")), "no peer")
	noTLS := peer.NewContext(context.Background(), &peer.Peer{})
	assert.ErrorContains(t, auth(noTLS, node("x", "edge")), "no verified client certificate")
	assert.NoError(t, nodeAuthorizer(identityCN)(peerWith(cert), node("envoy-cn", "edge")))
}

// Under --node-identity a CSDS caller sees its own node only, unless it is one
// of --csds-readers.
func TestCSDSVisibility(t *testing.T) {
	pki := newTestPKI(t)
	envoy := pki.issue(t, "envoy", false, "", "spiffe://leanxds/node/envoy-1")
	admin := pki.issue(t, "admin", false, "", "spiffe://leanxds/admin")
	vis := csdsVisibility(identitySANURI, []string{"spiffe://leanxds/admin"})

	see, err := vis(peerWith(envoy))
	require.NoError(t, err)
	assert.True(t, see("spiffe://leanxds/node/envoy-1"))
	assert.False(t, see("spiffe://leanxds/node/envoy-2"))

	see, err = vis(peerWith(admin))
	require.NoError(t, err)
	assert.True(t, see("spiffe://leanxds/node/envoy-2"))

	_, err = vis(context.Background())
	assert.Error(t, err)
}

// The server certificate is read again when its files change: a rotated
// certificate is served without a restart; a half-written one keeps the old.
func TestKeyPairReload(t *testing.T) {
	pki := newTestPKI(t)
	first := pki.issue(t, "server", true, "one")
	kp := &keyPairFiles{cert: pki.path("server.crt"), key: pki.path("server.key"), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c, err := kp.get(nil)
	require.NoError(t, err)
	assert.Equal(t, first.Raw, c.Certificate[0])

	second := pki.issue(t, "server", true, "two")
	future := time.Now().Add(time.Minute) // mtime granularity may hide a quick rewrite
	require.NoError(t, os.Chtimes(pki.path("server.crt"), future, future))
	require.NoError(t, os.Chtimes(pki.path("server.key"), future, future))
	c, err = kp.get(nil)
	require.NoError(t, err)
	assert.Equal(t, second.Raw, c.Certificate[0])

	require.NoError(t, os.WriteFile(pki.path("server.key"), []byte("half written"), 0o600))
	c, err = kp.get(nil)
	require.NoError(t, err)
	assert.Equal(t, second.Raw, c.Certificate[0])
}
