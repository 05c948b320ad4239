package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/leanxds/leanxds/admin"
)

// The commands that talk to a running serve through its admin HTTP server
// (reload, history, rollback, rollout) share its flags and its client:
// --admin, the credentials (--admin-token, --admin-token-file, or a client
// certificate over TLS), --timeout.

// adminTokenFileEnv is the environment variable of serve's --admin-token-file,
// which the admin commands read too.
var adminTokenFileEnv = envName("admin-token-file")

// adminClient is the client side of the admin HTTP server.
type adminClient struct {
	// cmd names the command in errors ("rollback").
	cmd       string
	addr      string
	token     string
	tokenFile string
	// TLS: the CA verifying the admin server, the client certificate and key
	// it may require (serve --admin-client-ca), the server name to verify.
	tlsCA, tlsCert, tlsKey, tlsName string
	timeout                         time.Duration

	http *http.Client
	// base is the admin server's URL without a path.
	base string
}

// addFlags declares the admin client's flags on fs.
func (c *adminClient) addFlags(fs *flag.FlagSet, timeout time.Duration) {
	fs.StringVar(&c.addr, "admin", defaultAdminAddr, "`address` of the server's admin HTTP server (its --admin), or its URL (https://...)")
	fs.StringVar(&c.token, "admin-token", "", "the server's admin token (its --admin-token, or what its --admin-token-file holds);\n"+
		"default: $"+adminTokenEnv+", the variable serve reads it from")
	fs.StringVar(&c.tokenFile, "admin-token-file", "", "`file` whose first line is the admin token (as serve's --admin-token-file);\n"+
		"default: $"+adminTokenFileEnv)
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM CA `file` to verify the admin server with (serve --admin-tls-cert): speak HTTPS")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM client certificate `file`, signed by the server's --admin-client-ca: speak HTTPS")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.StringVar(&c.tlsName, "tls-server-name", "", "server `name` to verify, when it differs from the host of --admin")
	fs.DurationVar(&c.timeout, "timeout", timeout, "how long to wait for the server")
}

// setup checks the flags together, reads the token (from the flags, then the
// environment) and builds the HTTP client.
func (c *adminClient) setup(env lookupEnv) error {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return usageErrorf("%s: --tls-cert and --tls-key go together", c.cmd)
	}
	if c.token != "" && c.tokenFile != "" {
		return usageErrorf("%s: --admin-token and --admin-token-file are exclusive", c.cmd)
	}
	if c.token == "" && c.tokenFile == "" {
		// As dump: the token is the same secret on both sides, so a command
		// run beside serve (in its container) just works.
		c.token, _ = env(adminTokenEnv)
		if c.token == "" {
			c.tokenFile, _ = env(adminTokenFileEnv)
		}
	}
	if c.tokenFile != "" {
		tok, err := admin.ReadTokenFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("%s: --admin-token-file: %w", c.cmd, err)
		}
		if tok == "" {
			return fmt.Errorf("%s: --admin-token-file %s holds no token", c.cmd, c.tokenFile)
		}
		c.token = tok
	}
	useTLS := c.tlsCA != "" || c.tlsCert != ""
	c.base = c.addr
	if !strings.Contains(c.base, "://") {
		scheme := "http://"
		if useTLS {
			scheme = "https://"
		}
		c.base = scheme + c.base
	}
	c.base = strings.TrimSuffix(c.base, "/")
	u, err := url.Parse(c.base)
	if err != nil || u.Host == "" {
		return usageErrorf("%s: --admin %q: not an address or URL", c.cmd, c.addr)
	}
	c.http = &http.Client{}
	if !useTLS {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.tlsName}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return fmt.Errorf("%s: --tls-ca: %w", c.cmd, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: --tls-ca %s: no PEM certificate in it", c.cmd, c.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if c.tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return fmt.Errorf("%s: client certificate: %w", c.cmd, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	c.http.Transport = &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	return nil
}

// adminError is the admin server's refusal or failure: its status and the
// message it gave.
type adminError struct {
	cmd    string
	status string
	code   int
	msg    string
}

func (e *adminError) Error() string { return fmt.Sprintf("%s: %s: %s", e.cmd, e.status, e.msg) }

// call sends method path (with its query) to the admin server and returns the
// body of a 2xx answer. Any other answer is an *adminError carrying the
// server's message, unless accept lists its status code: its body is then
// returned as well, for the command to read.
func (c *adminClient) call(ctx context.Context, method, path string, accept ...int) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, 0, usageErrorf("%s: --admin %q: %v", c.cmd, c.addr, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, fmt.Errorf("%s: %s: no answer within %s (--timeout)", c.cmd, c.base, c.timeout)
		}
		return nil, 0, fmt.Errorf("%s: %w", c.cmd, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s: %s%s: %w", c.cmd, c.base, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return body, resp.StatusCode, nil
	}
	for _, code := range accept {
		if code == resp.StatusCode {
			return body, resp.StatusCode, nil
		}
	}
	var refused struct{ Error string }
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &refused) == nil && refused.Error != "" {
		msg = refused.Error
	}
	if resp.StatusCode == http.StatusNotFound && !strings.HasPrefix(msg, "{") {
		msg = fmt.Sprintf("%s%s is not served there: %s (is it leanxds serve's --admin, and of a version with this endpoint?)", c.base, path, msg)
	}
	return nil, resp.StatusCode, &adminError{cmd: c.cmd, status: resp.Status, code: resp.StatusCode, msg: msg}
}
