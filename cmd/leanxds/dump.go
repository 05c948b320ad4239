package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/yaml"

	"github.com/leanxds/leanxds/protocol"
)

const dumpAbout = `
Print what a node connected to a leanxds server is served and whether it accepted
it, resource by resource, using the server's Client Status Discovery Service
(CSDS) on its xDS port. The table shows each resource's status (ACKED, NACKED,
REQUESTED, DOES_NOT_EXIST), the version the node last accepted for its type, and
the node's error for a rejected one. --output yaml adds the resources themselves;
--output json prints the CSDS response as protojson, for tools.`

type dumpOptions struct {
	server, node, output            string
	tlsCA, tlsCert, tlsKey, tlsName string
	adminToken                      string
	timeout                         time.Duration
}

// runDump is `leanxds dump`.
func runDump(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("dump", "leanxds dump [--server ADDR] [--node ID] [--output table|yaml|json]", dumpAbout, stderr)
	c.helpOut = stdout
	o := &dumpOptions{}
	fs := c.fs
	fs.StringVar(&o.server, "server", "127.0.0.1:18000", "xDS `address` of the leanxds server")
	fs.StringVar(&o.node, "node", "", "node `id` to show; every connected node when empty")
	fs.StringVar(&o.output, "output", "table", "output `format`: table, yaml or json")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA `file` to verify the server with: connect over TLS")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM client certificate `file`, for a server that requires mTLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.StringVar(&o.tlsName, "tls-server-name", "", "server `name` to verify, when it differs from the host of --server")
	fs.StringVar(&o.adminToken, "admin-token", "", "the server's --admin-token, for a server that sets one or that is not on this host;\n"+
		"default: $"+adminTokenEnv+", the variable serve reads it from")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the server")
	if err := c.parse(args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("dump: unexpected argument %q", fs.Arg(0))
	}
	switch o.output {
	case "table", "yaml", "json":
	default:
		return usageErrorf("dump: --output %q: want table, yaml or json", o.output)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageErrorf("dump: --tls-cert and --tls-key go together")
	}
	if o.adminToken == "" {
		// The one variable dump reads: the token is the same secret on both
		// sides, so dump run beside serve (in its container) just works.
		o.adminToken, _ = env(adminTokenEnv)
	}

	creds, err := o.credentials()
	if err != nil {
		return err
	}
	cc, err := grpc.NewClient(o.server, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.adminToken != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+o.adminToken)
	}
	// The table shows no resource: it asks for none, which makes the answer
	// several times smaller, and more nodes fit the server's CSDS budget.
	req := &statusv3.ClientStatusRequest{ExcludeResourceContents: o.output == "table"}
	if o.node != "" {
		req.NodeMatchers = []*matcherv3.NodeMatcher{{NodeId: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o.node},
		}}}
	}
	resp, err := statusv3.NewClientStatusDiscoveryServiceClient(cc).FetchClientStatus(ctx, req)
	if status.Code(err) == codes.ResourceExhausted && o.node == "" {
		return fmt.Errorf("CSDS at %s: %w\n(--node ID shows one node)", o.server, err)
	}
	if err != nil {
		if hint := o.tlsHint(ctx, err); hint != "" {
			return fmt.Errorf("CSDS at %s: %w\n%s", o.server, err, hint)
		}
		return fmt.Errorf("CSDS at %s: %w", o.server, err)
	}
	if o.node != "" && len(resp.GetConfig()) == 0 {
		return fmt.Errorf("node %q is not connected to %s", o.node, o.server)
	}
	return writeDump(stdout, resp, o.output)
}

func (o *dumpOptions) credentials() (credentials.TransportCredentials, error) {
	if o.tlsCA == "" && o.tlsCert == "" {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.tlsName}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in it", o.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if o.tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(cfg), nil
}

// tlsHint says which flag is missing when a connection failed because one side
// speaks TLS and the other does not, "" otherwise. A server that expects TLS
// closes a plaintext connection without a word, which gRPC reports as a
// connection error: dump then tries a TLS handshake, only to learn whether the
// server answers one.
func (o *dumpOptions) tlsHint(ctx context.Context, err error) string {
	if status.Code(err) != codes.Unavailable {
		return ""
	}
	if o.tlsCA != "" || o.tlsCert != "" {
		if strings.Contains(err.Error(), "first record does not look like a TLS handshake") {
			return "the server does not speak TLS: leave out --tls-ca, --tls-cert and --tls-key"
		}
		return ""
	}
	if _, _, splitErr := net.SplitHostPort(o.server); splitErr != nil {
		return "" // a gRPC target (dns:///...), not an address to probe
	}
	if !speaksTLS(ctx, o.server) {
		return ""
	}
	return "the server expects TLS: pass --tls-ca FILE, the CA that signed its certificate " +
		"(and --tls-cert FILE --tls-key FILE if it requires a client certificate)"
}

// speaksTLS reports whether the server at addr completes the server's part of a
// TLS handshake. Nothing is sent over the connection and the certificate is not
// trusted for anything: it is not verified, only seen.
func speaksTLS(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // a probe, see above
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// writeDump prints a CSDS response as a table (one line per resource), YAML or
// JSON.
func writeDump(w io.Writer, resp *statusv3.ClientStatusResponse, format string) error {
	switch format {
	case "json", "yaml":
		b, err := displayJSON.Marshal(resp)
		if err != nil {
			return err
		}
		// protojson's own spacing varies on purpose; indent it ourselves for a
		// stable output.
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return err
		}
		b = buf.Bytes()
		if format == "yaml" {
			if b, err = yaml.JSONToYAML(b); err != nil {
				return err
			}
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	if len(resp.GetConfig()) == 0 {
		_, err := fmt.Fprintln(w, "no client connected")
		return err
	}
	var buf bytes.Buffer
	for i, c := range resp.GetConfig() {
		if i > 0 {
			fmt.Fprintln(&buf)
		}
		fmt.Fprintf(&buf, "node %s (cluster %q)\n", c.GetNode().GetId(), c.GetNode().GetCluster())
		tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tNAME\tSTATUS\tVERSION\tERROR")
		for _, g := range c.GetGenericXdsConfigs() {
			version := g.GetVersionInfo()
			if version == "" {
				version = "-"
			}
			errText := ""
			if es := g.GetErrorState(); es != nil {
				errText = strings.ReplaceAll(es.GetDetails(), "\n", " ")
				if es.GetVersionInfo() != "" {
					errText = fmt.Sprintf("rejected %s: %s", es.GetVersionInfo(), errText)
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", protocol.Short(g.GetTypeUrl()), g.GetName(), g.GetClientStatus(), version, errText)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	// tabwriter pads the last column of a line whose error is empty.
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}
