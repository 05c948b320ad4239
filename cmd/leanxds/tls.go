package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Node identity modes (--node-identity): which part of a client's verified
// certificate must equal the node id it claims.
const (
	identitySANURI = "san-uri" // a URI SAN, e.g. spiffe://example.org/ns/prod/envoy-1
	identitySANDNS = "san-dns" // a DNS SAN
	identityCN     = "cn"      // the subject common name
)

// serverTLS returns the TLS configuration of the xDS port. The key pair is read
// again when its files change, so a rotated certificate is used without a
// restart. With a client CA, every client must present a certificate it signed.
func serverTLS(certFile, keyFile, caFile string, log *slog.Logger) (*tls.Config, error) {
	kp := &keyPairFiles{cert: certFile, key: keyFile, log: log}
	if _, err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: kp.get,
		NextProtos:     []string{"h2"},
	}
	if caFile != "" {
		pool, err := readCAPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// adminTLS returns the TLS configuration of the admin server (--admin-tls-cert,
// --admin-tls-key, --admin-client-ca). Unlike the xDS port's, a client
// certificate is verified if given, not required: it is what lets a caller use
// the mutating endpoints, while Prometheus and the probes connect without one.
func adminTLS(certFile, keyFile, caFile string, log *slog.Logger) (*tls.Config, error) {
	kp := &keyPairFiles{cert: certFile, key: keyFile, log: log}
	if _, err := kp.load(); err != nil {
		return nil, fmt.Errorf("admin %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	if caFile != "" {
		pool, err := readCAPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("admin %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// readCAPool reads a PEM file of client CA certificates.
func readCAPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// keyPairFiles serves a certificate and key from files, reloading them when
// either changes.
type keyPairFiles struct {
	cert, key string
	log       *slog.Logger

	mu      sync.Mutex
	pair    *tls.Certificate
	modTime [2]time.Time
}

func (k *keyPairFiles) stamps() ([2]time.Time, error) {
	var out [2]time.Time
	for i, f := range []string{k.cert, k.key} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, err
		}
		out[i] = fi.ModTime()
	}
	return out, nil
}

// load reads the pair if the files changed since the last read.
func (k *keyPairFiles) load() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stamps, err := k.stamps()
	if err == nil && k.pair != nil && stamps == k.modTime {
		return k.pair, nil
	}
	pair, lerr := tls.LoadX509KeyPair(k.cert, k.key)
	if err := errors.Join(err, lerr); err != nil {
		if k.pair != nil {
			// Mid-rotation (one file written, not the other): keep the old pair.
			k.log.Warn("reloading the TLS certificate failed: the previous one is still used", "err", err)
			return k.pair, nil
		}
		return nil, fmt.Errorf("TLS key pair: %w", err)
	}
	k.pair, k.modTime = &pair, stamps
	return k.pair, nil
}

func (k *keyPairFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return k.load() }

// certIdentities returns the identities a certificate proves, by mode.
func certIdentities(cert *x509.Certificate, mode string) []string {
	switch mode {
	case identitySANURI:
		out := make([]string, 0, len(cert.URIs))
		for _, u := range cert.URIs {
			out = append(out, u.String())
		}
		return out
	case identitySANDNS:
		return cert.DNSNames
	case identityCN:
		if cert.Subject.CommonName != "" {
			return []string{cert.Subject.CommonName}
		}
	}
	return nil
}

// peerIdentities returns the identities of the verified client certificate of
// the call in ctx.
func peerIdentities(ctx context.Context, mode string) ([]string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errors.New("no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, errors.New("no verified client certificate")
	}
	return certIdentities(info.State.VerifiedChains[0][0], mode), nil
}

// nodeAuthorizer returns the stream.Options.Authorize of --node-identity: the node
// id a client claims must be one of its certificate's identities, so that no
// client can pass for another node and read its scope.
func nodeAuthorizer(mode string) func(context.Context, *corev3.Node) error {
	return func(ctx context.Context, n *corev3.Node) error {
		ids, err := peerIdentities(ctx, mode)
		if err != nil {
			return err
		}
		if slices.Contains(ids, n.GetId()) {
			return nil
		}
		return fmt.Errorf("node id %q does not match the client certificate (%s: %q)", n.GetId(), mode, ids)
	}
}

// csdsVisibility returns the CSDS access rule under --node-identity: a caller
// whose certificate identity is one of readers sees every node; any other
// caller sees only the nodes its certificate names. Otherwise a node could read,
// through CSDS, what another node is served.
func csdsVisibility(mode string, readers []string) func(context.Context) (func(string) bool, error) {
	return func(ctx context.Context) (func(string) bool, error) {
		ids, err := peerIdentities(ctx, mode)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if slices.Contains(readers, id) {
				return func(string) bool { return true }, nil
			}
		}
		return func(node string) bool { return slices.Contains(ids, node) }, nil
	}
}
