package source

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultEtcdPrefix is the key prefix of an etcd:// address without one.
const DefaultEtcdPrefix = "/leanxds"

// defaultEtcdPort is the port of an etcd:// endpoint without one.
const defaultEtcdPort = "2379"

// Environment variables holding the etcd credentials (EtcdCredentialsFromEnv).
const (
	EnvEtcdUsername = "LEANXDS_ETCD_USERNAME"
	EnvEtcdPassword = "LEANXDS_ETCD_PASSWORD"
)

// EtcdAddress is where content lives in etcd: the endpoints of the cluster and
// the key prefix under which the layout of docs/etcd.md starts.
type EtcdAddress struct {
	// Endpoints are host:port, in the order given.
	Endpoints []string
	// Prefix starts with "/" and has no trailing slash.
	Prefix string
}

// String returns the address in the form ParseEtcdAddress reads.
func (a EtcdAddress) String() string {
	return "etcd://" + strings.Join(a.Endpoints, ",") + a.Prefix
}

// ParseEtcdAddress reads an address of the form
//
//	etcd://h1:2379,h2:2379/prefix
//
// An endpoint without a port gets 2379; no prefix (or "/") is
// DefaultEtcdPrefix; a trailing slash of the prefix is dropped.
func ParseEtcdAddress(s string) (EtcdAddress, error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return EtcdAddress{}, fmt.Errorf("etcd address %q: want etcd://host:port[,host:port...][/prefix]", s)
	}
	hosts, prefix := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hosts, prefix = rest[:i], rest[i:]
	}
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		prefix = DefaultEtcdPrefix
	}
	if strings.ContainsAny(prefix, "?#") || strings.Contains(prefix, "//") {
		return EtcdAddress{}, fmt.Errorf("etcd address %q: prefix %q: want /name[/name...]", s, prefix)
	}
	a := EtcdAddress{Prefix: prefix}
	for h := range strings.SplitSeq(hosts, ",") {
		if h == "" {
			return EtcdAddress{}, fmt.Errorf("etcd address %q: an empty endpoint", s)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: h is the host (an IPv6 literal needs brackets).
			host, port = strings.Trim(h, "[]"), defaultEtcdPort
			if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
				return EtcdAddress{}, fmt.Errorf("etcd address %q: endpoint %q: %v", s, h, err)
			}
		}
		if host == "" || port == "" {
			return EtcdAddress{}, fmt.Errorf("etcd address %q: endpoint %q: want host:port", s, h)
		}
		a.Endpoints = append(a.Endpoints, net.JoinHostPort(host, port))
	}
	return a, nil
}

// EtcdClientOptions are how a client reaches etcd: TLS files and credentials.
// The zero value is plain TCP without authentication.
type EtcdClientOptions struct {
	// CAFile verifies the servers' certificates (--etcd-ca); CertFile and
	// KeyFile are the client's certificate (--etcd-cert, --etcd-key). Any of
	// them turns TLS on; without CAFile the system's roots are used.
	CAFile, CertFile, KeyFile string
	// Username and Password authenticate to etcd (EtcdCredentialsFromEnv).
	Username, Password string
	// DialTimeout bounds the first connection; 0 is 5 seconds.
	DialTimeout time.Duration
}

// EtcdCredentialsFromEnv returns the credentials in LEANXDS_ETCD_USERNAME and
// LEANXDS_ETCD_PASSWORD, read with getenv (os.Getenv, or a test's).
func EtcdCredentialsFromEnv(getenv func(string) string) (username, password string) {
	return getenv(EnvEtcdUsername), getenv(EnvEtcdPassword)
}

// EtcdConfig returns the configuration of a client of the cluster at a: its
// endpoints, TLS and credentials, keepalives that notice a dead member within
// seconds, and no logging (the callers log what matters).
func EtcdConfig(a EtcdAddress, o EtcdClientOptions) (clientv3.Config, error) {
	if len(a.Endpoints) == 0 {
		return clientv3.Config{}, errors.New("etcd: no endpoint")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return clientv3.Config{}, errors.New("etcd: --etcd-cert and --etcd-key go together")
	}
	if (o.Username == "") != (o.Password == "") {
		return clientv3.Config{}, fmt.Errorf("etcd: %s and %s go together", EnvEtcdUsername, EnvEtcdPassword)
	}
	cfg := clientv3.Config{
		Endpoints:            append([]string(nil), a.Endpoints...),
		DialTimeout:          o.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		PermitWithoutStream:  true,
		Username:             o.Username,
		Password:             o.Password,
		Logger:               zap.NewNop(),
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if o.CAFile != "" || o.CertFile != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return clientv3.Config{}, fmt.Errorf("etcd: --etcd-ca: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return clientv3.Config{}, fmt.Errorf("etcd: --etcd-ca %s: no PEM certificate", o.CAFile)
			}
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return clientv3.Config{}, fmt.Errorf("etcd: --etcd-cert/--etcd-key: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		cfg.TLS = t
	}
	return cfg, nil
}
