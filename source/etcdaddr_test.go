package source

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --etcd-ca, --etcd-cert and --etcd-key make a TLS client that trusts the CA
// and presents the certificate.
func TestEtcdConfigTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
		return p
	}
	ca := write("ca.pem", "CERTIFICATE", der)
	keyFile := write("key.pem", "EC PRIVATE KEY", keyDER)

	cfg, err := EtcdConfig(EtcdAddress{Endpoints: []string{"127.0.0.1:2379"}, Prefix: "/p"},
		EtcdClientOptions{CAFile: ca, CertFile: ca, KeyFile: keyFile})
	require.NoError(t, err)
	require.NotNil(t, cfg.TLS)
	require.Len(t, cfg.TLS.Certificates, 1)
	require.NotNil(t, cfg.TLS.RootCAs)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	_, err = cert.Verify(x509.VerifyOptions{Roots: cfg.TLS.RootCAs})
	assert.NoError(t, err, "the CA file is trusted")

	_, err = EtcdConfig(EtcdAddress{Endpoints: []string{"h:1"}}, EtcdClientOptions{CAFile: keyFile})
	assert.ErrorContains(t, err, "no PEM certificate")
}
