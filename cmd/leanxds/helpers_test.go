package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/source"
)

// copyExample copies examples/NAME into a temporary directory the test may edit.
func copyExample(t testing.TB, name string) string {
	t.Helper()
	dst := t.TempDir()
	copyExampleTo(t, name, dst)
	return dst
}

// copyExampleTo copies the files of examples/NAME into dst, created if need
// be: a scope directory, when dst is a subdirectory of a config directory.
// Subdirectories are the example's programs (examples/grpc/server, ...), not
// config: they are left out.
func copyExampleTo(t testing.TB, name, dst string) {
	t.Helper()
	src := filepath.Join("..", "..", "examples", name)
	require.NoError(t, os.MkdirAll(dst, 0o755))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644))
	}
}

// cluster is a resource file holding a STATIC cluster: it refers to nothing, so
// a directory of them has no dangling reference.
func cluster(name, timeout string) string {
	return "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: " + name +
		"\ntype: STATIC\nconnect_timeout: " + timeout + "\nload_assignment:\n  cluster_name: " + name +
		"\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}\n"
}

// clusters is a resource file listing n STATIC clusters named c0, c1, ...
func clusters(n int, timeout string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("- " + strings.ReplaceAll(cluster(fmt.Sprintf("c%d", i), timeout), "\n", "\n  ") + "\n")
	}
	return b.String()
}

// routes is a resource file holding route configuration name, which sends every
// request to cluster.
func routes(name, cluster string) string {
	return "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\nname: " + name +
		"\nvirtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {prefix: /}\n    route: {cluster: " + cluster + "}\n"
}

// writeFile writes content to dir/name, creating subdirectories.
func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

// editFile replaces old by new in dir/name; old must be there.
func editFile(t testing.TB, dir, name, old, new string) {
	t.Helper()
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Contains(t, string(b), old)
	require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644))
}

// resourceJSONFile renders messages as a resource file: a JSON list of Any.
func resourceJSONFile(t testing.TB, ms ...proto.Message) string {
	t.Helper()
	parts := make([]string, len(ms))
	for i, m := range ms {
		a, err := anypb.New(m)
		require.NoError(t, err)
		b, err := protojson.Marshal(a)
		require.NoError(t, err)
		parts[i] = string(b)
	}
	return "[" + strings.Join(parts, ",\n") + "]"
}

func node(id, cluster string) *corev3.Node { return &corev3.Node{Id: id, Cluster: cluster} }

// eventually polls cond every 10ms until it holds, failing the test after 5s
// with what and the text of each of explain (a process's logs).
func eventually(t testing.TB, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var more strings.Builder
			for _, f := range explain {
				more.WriteString("\n" + f())
			}
			t.Fatalf("timed out waiting for %s%s", what, more.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testServer is a serve of a config directory inside the test process: the
// handlers, hooks and CSDS of the binary, on 127.0.0.1, without the process.
type testServer struct {
	*server
	dir string
	// addr is the xDS port's address.
	addr string
	cc   *grpc.ClientConn
	// admin serves the admin pages.
	admin *httptest.Server
}

func startTestServer(t testing.TB, dir string, opts ...func(*serveOptions)) *testServer {
	t.Helper()
	o := &serveOptions{configDir: dir, listen: "127.0.0.1:0", scopeBy: "cluster", debounce: 20 * time.Millisecond, drainTimeout: time.Second,
		csdsMaxBytes: admin.DefaultCSDSMaxBytes, adminMaxBytes: admin.DefaultMaxBytes, adminMaxPage: admin.DefaultMaxPage,
		dir: source.DirOptions{MaxFileBytes: source.DefaultMaxFileBytes, MaxDirBytes: source.DefaultMaxDirBytes,
			MaxDeleteFraction: source.DefaultMaxDeleteFraction, DeleteGuardMin: source.DefaultDeleteGuardMin}}
	for _, f := range opts {
		f(o)
	}
	s, err := newServer(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoError(t, s.initialLoad(context.Background()))
	lis, err := s.listenXDS(context.Background())
	require.NoError(t, err)
	go func() { _ = s.grpc.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	web := httptest.NewServer(s.admin)
	t.Cleanup(func() {
		web.Close()
		_ = cc.Close()
		s.grpc.Stop()
	})
	return &testServer{server: s, dir: dir, addr: lis.Addr().String(), cc: cc, admin: web}
}

// testPKI is a CA and the certificates it signs, generated per test run so no
// key material lives in the repository.
type testPKI struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	dir    string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leanxds test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &testPKI{caCert: cert, caKey: key, dir: t.TempDir()}
	writePEM(t, p.path("ca.crt"), "CERTIFICATE", der)
	return p
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

// issue writes name.crt and name.key: a certificate signed by the CA for a
// server on 127.0.0.1 (server) or a client with the given identities.
func (p *testPKI) issue(t testing.TB, name string, server bool, cn string, uris ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	writePEM(t, p.path(name+".crt"), "CERTIFICATE", der)
	writePEM(t, p.path(name+".key"), "EC PRIVATE KEY", keyDER)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}
