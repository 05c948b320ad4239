package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
)

// The end-to-end tests build the binary once and run it as a user would, on
// 127.0.0.1 with ports the kernel picks (the binary logs them).

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// leanxdsBinary builds the binary on first use.
func leanxdsBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "leanxds-e2e")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "leanxds")
		out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, binary.err)
	return binary.path
}

// proc is a running leanxds serve.
type proc struct {
	cmd   *exec.Cmd
	xds   string
	admin string

	mu   sync.Mutex
	logs []map[string]any
	// exited is closed when the process ended; err is its Wait error.
	exited chan struct{}
	err    error
}

// startServe runs `leanxds serve` in dir (the working directory) with args, JSON
// logs and free ports (unless args or env set them), and waits until it is ready.
func startServe(t *testing.T, workdir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(leanxdsBinary(t), append([]string{"serve"}, args...)...)
	cmd.Dir = workdir
	cmd.Env = append(os.Environ(), "LEANXDS_LISTEN=127.0.0.1:0", "LEANXDS_ADMIN=127.0.0.1:0", "LEANXDS_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	addrs := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				line = map[string]any{"msg": sc.Text()}
			}
			p.mu.Lock()
			p.logs = append(p.logs, line)
			p.mu.Unlock()
			switch line["msg"] {
			case "xDS listening", "admin listening":
				addrs <- [2]string{line["msg"].(string), fmt.Sprint(line["addr"])}
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.After(30 * time.Second)
	for p.xds == "" || p.admin == "" {
		select {
		case a := <-addrs:
			if a[0] == "xDS listening" {
				p.xds = a[1]
			} else {
				p.admin = "http://" + a[1]
			}
		case <-p.exited:
			t.Fatalf("leanxds exited at start: %v\n%s", p.err, p.logText())
		case <-deadline:
			t.Fatalf("leanxds did not start\n%s", p.logText())
		}
	}
	eventually(t, "/readyz", func() bool {
		code, _ := get(t, p.admin, "/readyz")
		return code == http.StatusOK
	})
	return p
}

// logLine returns the first log line whose message is msg, or nil.
func (p *proc) logLine(msg string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// logLineWith returns the first log line whose message is msg and whose
// attribute key is value, or nil.
func (p *proc) logLineWith(msg, key string, value any) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if l["msg"] == msg && l[key] == value {
			return l
		}
	}
	return nil
}

// logIndex returns the position of the first log line whose message is msg
// among the process's log lines, or -1.
func (p *proc) logIndex(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, l := range p.logs {
		if l["msg"] == msg {
			return i
		}
	}
	return -1
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.logs {
		j, _ := json.Marshal(l)
		b.Write(append(j, '\n'))
	}
	return b.String()
}

// stop sends SIGTERM and asserts a clean exit (status 0) within the drain timeout.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("leanxds did not exit after SIGTERM\n%s", p.logText())
	}
	require.NoError(t, p.err, "exit status after SIGTERM\n%s", p.logText())
	assert.NotNil(t, p.logLine("stopped"))
}

// metric returns the value of one sample of /metrics, given as it is printed
// (name{labels}); -1 when absent.
func metric(t *testing.T, admin, sample string) float64 {
	t.Helper()
	_, body := get(t, admin, "/metrics")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

func dialInsecure(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// portOf returns the port of the first endpoint of an assignment.
func portOf(m any) uint32 {
	cla := m.(*endpointv3.ClusterLoadAssignment)
	return cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
}

// The binary serves a config directory, applies an edit, keeps the last good
// config when a file is invalid and shows it in /metrics and the admin page,
// reports versions in /debug/clients and /debug/config, reports a NACK in
// /metrics and in CSDS (through `leanxds dump`), and exits 0 on SIGTERM after
// telling its clients to go.
func TestBinaryServeReloadAndObserve(t *testing.T) {
	dir := copyExample(t, "edge")
	p := startServe(t, t.TempDir(), nil, "--config", dir, "--debounce", "50ms", "--drain-timeout", "5s")

	// The startup log says where it listens, which scopes and how many resources.
	loaded := p.logLine("config loaded")
	require.NotNil(t, loaded, p.logText())
	assert.Equal(t, 11.0, loaded["resources"])
	assert.Equal(t, 1.0, loaded["scopes"])
	assert.Equal(t, map[string]any{"default": 11.0}, loaded["per_scope"])
	// On loopback, neither port is reported as open to other hosts.
	assert.NotContains(t, p.logText(), "from other hosts")

	cc := dialInsecure(t, p.xds)
	c := conv.ADS(t, cc, node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	c.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))
	c.ACK()
	first := c.Request(protocol.TypeEndpoint, "api", "payments", "web").ExpectResponse(conv.Names("api", "payments", "web"))
	c.ACK()
	assert.Equal(t, uint32(8081), portOf(first.Resource("web")))

	// An edit arrives.
	editFile(t, dir, "endpoints.yaml", "port_value: 8081", "port_value: 9081")
	edited := c.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names("web"))
	assert.Equal(t, uint32(9081), portOf(edited.Resource("web")))
	c.ACK()

	// An invalid file: rejected, counted, shown; the old config is still served.
	writeFile(t, dir, "broken.yaml", cluster("broken", "-1s"))
	eventually(t, "the rejected reload in /metrics", func() bool {
		return metric(t, p.admin, `leanxds_config_reloads_total{result="rejected"}`) == 1
	})
	assert.Equal(t, 0.0, metric(t, p.admin, "leanxds_config_last_reload_successful"))
	c.ExpectNothing()
	_, page := get(t, p.admin, "/")
	assert.Contains(t, page, "LAST RELOAD REJECTED")
	assert.Contains(t, page, `broken.yaml:4:1: resource #1 (CDS "broken"): connect_timeout: value must be greater than 0s`)
	assert.NotNil(t, p.logLine("config rejected: the last good config is still served"))

	// /debug/clients: the EDS version sent is the one the client ACKed.
	var clients []admin.Client
	eventually(t, "the ACK in /debug/clients", func() bool {
		clients = getClients(t, p.admin, "/debug/clients")
		return len(clients) == 1 && len(clients[0].Types) == 2 && clients[0].Types[1].VersionACKed == edited.Version()
	})
	assert.Equal(t, edited.Version(), clients[0].Types[1].VersionSent)
	assert.Equal(t, "envoy-1", clients[0].NodeID)
	assert.Equal(t, "sotw", clients[0].Variant)

	// /debug/config: each resource's version is the hash of what the client got.
	var cfg struct {
		Streams []admin.StreamConfig `json:"streams"`
	}
	getJSON(t, p.admin, "/debug/config?node=envoy-1", &cfg)
	require.Len(t, cfg.Streams, 1)
	eds := cfg.Streams[0].Types[1]
	require.Equal(t, "EDS", eds.Type)
	assert.Equal(t, edited.Version(), eds.VersionACKed)
	require.Equal(t, "web", eds.Resources[2].Name)
	assert.Equal(t, protocol.ContentVersion(edited.Resources[0].GetValue()), eds.Resources[2].Version)
	assert.Regexp(t, `"port_value":\s*9081`, string(eds.Resources[2].Resource))

	// The fix is applied; then a change the client NACKs shows in /metrics and CSDS.
	require.NoError(t, os.Remove(filepath.Join(dir, "broken.yaml")))
	editFile(t, dir, "endpoints.yaml", "port_value: 8083", "port_value: 9083")
	c.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names("api"))
	c.NACK("api: port 9083 refused by policy")
	eventually(t, "the NACK in /metrics", func() bool {
		return metric(t, p.admin, `leanxds_xds_nacks_total{type="EDS",variant="sotw"}`) == 1
	})
	assert.Equal(t, 1.0, metric(t, p.admin, "leanxds_config_last_reload_successful"))
	assert.Equal(t, 1.0, metric(t, p.admin, `leanxds_xds_streams{variant="sotw"}`))
	assert.Equal(t, 3.0, metric(t, p.admin, `leanxds_resources{scope="default",type="EDS"}`))

	out, err := exec.Command(leanxdsBinary(t), "dump", "--server", p.xds, "--node", "envoy-1").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Regexp(t, `(?m)^  EDS +api +NACKED +`+edited.Version()+` +rejected [0-9a-f]{16}: api: port 9083 refused by policy$`, string(out))
	assert.Regexp(t, `(?m)^  CDS +web +ACKED `, string(out))

	// SIGTERM: the stream is told to go (Unavailable) and the process exits 0.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	c.ExpectError(codes.Unavailable)
	p.stop(t)
}

// routeCluster returns the cluster of the route of a route configuration whose
// prefix is prefix, or "".
func routeCluster(m any, prefix string) string {
	for _, vh := range m.(*routev3.RouteConfiguration).GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetMatch().GetPrefix() == prefix {
				return r.GetRoute().GetCluster()
			}
		}
	}
	return ""
}

// A reload that leaves a route to a cluster no file defines is rejected like an
// invalid file: counted and shown, while connected and new clients keep the last
// good routes. With LEANXDS_ALLOW_DANGLING (--allow-dangling) the same directory
// is served, with a warning.
func TestBinaryDanglingReference(t *testing.T) {
	dir := copyExample(t, "edge")
	p := startServe(t, t.TempDir(), nil, "--config", dir, "--debounce", "50ms")
	cc := dialInsecure(t, p.xds)
	c := conv.ADS(t, cc, node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	first := c.Request(protocol.TypeRoute, "public-routes").ExpectResponse(conv.Names("public-routes"))
	c.ACK()
	require.Equal(t, "web", routeCluster(first.Resource("public-routes"), "/"))

	// A typo: "wbe" is no cluster. (A reload that reads the file half written
	// is rejected too, so the count may be more than one.)
	want := filepath.Join(dir, "routes.yaml") + `: scope "default": RDS "public-routes" refers to CDS "wbe", which no file of the scope defines`
	editFile(t, dir, "routes.yaml", "route: {cluster: web}", "route: {cluster: wbe}")
	var page string
	eventually(t, "the rejection on the admin page", func() bool {
		_, page = get(t, p.admin, "/")
		return strings.Contains(page, "  "+want+"\n")
	}, p.logText)
	assert.Contains(t, page, "LAST RELOAD REJECTED")
	assert.GreaterOrEqual(t, metric(t, p.admin, `leanxds_config_reloads_total{result="rejected"}`), 1.0)
	assert.Equal(t, 1.0, metric(t, p.admin, `leanxds_config_reloads_total{result="applied"}`), "the first load only")
	assert.Equal(t, 0.0, metric(t, p.admin, "leanxds_config_last_reload_successful"))
	c.ExpectNothing()
	fresh := conv.ADS(t, cc, node("envoy-2", "edge"), conv.WithTimeout(10*time.Second))
	got := fresh.Request(protocol.TypeRoute, "public-routes").ExpectResponse(conv.Names("public-routes"))
	assert.Equal(t, "web", routeCluster(got.Resource("public-routes"), "/"), "the last good routes")

	code, ready := get(t, p.admin, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, ready, "ready: config loaded")
	assert.NotNil(t, p.logLine("config rejected: the last good config is still served"), p.logText())
	errLine := p.logLineWith("config error", "error", want)
	require.NotNil(t, errLine, p.logText())
	assert.Equal(t, filepath.Join(dir, "routes.yaml"), errLine["file"])
	p.stop(t)

	// The same directory, allowed: served with the dangling route, and warned about.
	allowed := startServe(t, t.TempDir(), []string{"LEANXDS_ALLOW_DANGLING=true"}, "--config", dir)
	a := conv.ADS(t, dialInsecure(t, allowed.xds), node("envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	got = a.Request(protocol.TypeRoute, "public-routes").ExpectResponse(conv.Names("public-routes"))
	assert.Equal(t, "wbe", routeCluster(got.Resource("public-routes"), "/"))
	warned := allowed.logLine("dangling reference")
	require.NotNil(t, warned, allowed.logText())
	assert.Equal(t, want, warned["warning"])
	assert.Equal(t, 0.0, metric(t, allowed.admin, `leanxds_config_reloads_total{result="rejected"}`))
	_, page = get(t, allowed.admin, "/")
	assert.Contains(t, page, "warnings:\n  "+want+"\n")
	assert.NotContains(t, page, "REJECTED")
	allowed.stop(t)
}

// dialMTLS returns a connection to addr that trusts the CA of pki and presents
// the certificate pki issued as client, or none when client is "".
func dialMTLS(t *testing.T, pki *testPKI, addr, client string) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(pki.caCert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if client != "" {
		pair, err := tls.LoadX509KeyPair(pki.path(client+".crt"), pki.path(client+".key"))
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{pair}
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// With --client-ca and --node-identity, a client must present a certificate the
// CA signed, and may only claim the node id its certificate names; CSDS shows a
// client only its own node.
func TestBinaryMTLSNodeIdentity(t *testing.T) {
	pki := newTestPKI(t)
	pki.issue(t, "server", true, "leanxds")
	pki.issue(t, "envoy-1", false, "envoy-1", "spiffe://leanxds/node/envoy-1")
	pki.issue(t, "envoy-2", false, "envoy-2", "spiffe://leanxds/node/envoy-2")
	// Each SPIFFE ID is mapped to a scope: envoy-1 to the edge example, envoy-2
	// to a scope of one cluster.
	dir := t.TempDir()
	copyExampleTo(t, "edge", filepath.Join(dir, "edge"))
	writeFile(t, dir, "envoy-2/cluster.yaml", cluster("other", "1s"))
	scopeMap := filepath.Join(t.TempDir(), "scopes.yaml")
	writeFile(t, filepath.Dir(scopeMap), "scopes.yaml", "spiffe://leanxds/node/envoy-1: edge\nspiffe://leanxds/node/envoy-2: envoy-2\n")
	p := startServe(t, t.TempDir(), nil, "--config", dir,
		"--tls-cert", pki.path("server.crt"), "--tls-key", pki.path("server.key"),
		"--client-ca", pki.path("ca.crt"), "--node-identity", "san-uri", "--scope-by", "id",
		"--scope-map", scopeMap)
	dial := func(client string) *grpc.ClientConn { return dialMTLS(t, pki, p.xds, client) }

	envoy1 := dial("envoy-1")
	good := conv.ADS(t, envoy1, node("spiffe://leanxds/node/envoy-1", "edge"), conv.WithTimeout(10*time.Second))
	good.Request(protocol.TypeCluster).ExpectResponse(conv.Names("api", "payments", "web"))

	// envoy-1's certificate, claiming to be envoy-2: refused.
	liar := conv.ADS(t, envoy1, node("spiffe://leanxds/node/envoy-2", "edge"), conv.WithTimeout(10*time.Second))
	liar.Request(protocol.TypeCluster)
	err := liar.ExpectError(codes.PermissionDenied)
	assert.Contains(t, err.Error(), "does not match the client certificate")

	envoy2 := dial("envoy-2")
	other := conv.ADS(t, envoy2, node("spiffe://leanxds/node/envoy-2", "edge"), conv.WithTimeout(10*time.Second))
	other.Request(protocol.TypeCluster).ExpectResponse(conv.Names("other"))

	// No client certificate: no connection at all.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = statusv3.NewClientStatusDiscoveryServiceClient(dial("")).FetchClientStatus(ctx, &statusv3.ClientStatusRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	// CSDS through dump, as envoy-1: its own node only, though envoy-2 is connected.
	var out []byte
	eventually(t, "both nodes connected", func() bool {
		_, body := get(t, p.admin, "/debug/clients")
		return strings.Count(body, `"node_id"`) == 2
	})
	out, err = exec.Command(leanxdsBinary(t), "dump", "--server", p.xds, "--tls-ca", pki.path("ca.crt"),
		"--tls-cert", pki.path("envoy-1.crt"), "--tls-key", pki.path("envoy-1.key"), "--tls-server-name", "localhost").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "node spiffe://leanxds/node/envoy-1")
	assert.NotContains(t, string(out), "envoy-2")
	assert.NotNil(t, p.logLine("xDS listening"))
	p.stop(t)
}

// secret is a resource file holding a generic secret.
func secret(name, value string) string {
	return "\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\nname: " + name +
		"\ngeneric_secret: {secret: {inline_string: " + value + "}}\n"
}

// Under --node-identity a node is served the scope of its certificate's
// identity and no other: a SPIFFE ID through --scope-map; a common name by
// itself. A node whose identity has no scope is refused, not served the
// default scope and its secrets; so is a node whose node.cluster names another
// node's scope.
func TestBinaryNodeIdentityScopes(t *testing.T) {
	pki := newTestPKI(t)
	pki.issue(t, "server", true, "leanxds")
	pki.issue(t, "spiffe-a", false, "", "spiffe://td/ns/a")
	pki.issue(t, "spiffe-x", false, "", "spiffe://td/ns/x")
	pki.issue(t, "node-a", false, "node-a")
	pki.issue(t, "node-c", false, "node-c")
	dir := copyExample(t, "edge") // the default scope, with its secret upstream-ca
	for _, scope := range []string{"scope-a", "node-a", "node-b"} {
		writeFile(t, dir, scope+"/cluster.yaml", cluster(scope+"-web", "1s"))
		writeFile(t, dir, scope+"/secret.yaml", secret(scope+"-secret", scope+"-password"))
	}
	tlsFlags := []string{"--config", dir, "--tls-cert", pki.path("server.crt"), "--tls-key", pki.path("server.key"), "--client-ca", pki.path("ca.crt")}

	t.Run("san-uri, scope map", func(t *testing.T) {
		scopeMap := filepath.Join(t.TempDir(), "scopes.yaml")
		writeFile(t, filepath.Dir(scopeMap), "scopes.yaml", "spiffe://td/ns/a: scope-a\n")
		p := startServe(t, t.TempDir(), nil, append(tlsFlags, "--node-identity", "san-uri", "--scope-by", "id", "--scope-map", scopeMap)...)

		a := conv.ADS(t, dialMTLS(t, pki, p.xds, "spiffe-a"), node("spiffe://td/ns/a", ""), conv.WithTimeout(10*time.Second))
		a.Request(protocol.TypeCluster).ExpectResponse(conv.Names("scope-a-web"))
		a.ACK()
		a.Request(protocol.TypeSecret, "scope-a-secret").ExpectResponse(conv.Names("scope-a-secret"))

		x := conv.ADS(t, dialMTLS(t, pki, p.xds, "spiffe-x"), node("spiffe://td/ns/x", ""), conv.WithTimeout(10*time.Second))
		x.Request(protocol.TypeSecret, "upstream-ca")
		err := x.ExpectError(codes.PermissionDenied)
		assert.Contains(t, err.Error(), `identity "spiffe://td/ns/x" has no entry in the scope map `+scopeMap)
		eventually(t, "the refusal to be logged", func() bool { return p.logLineWith("node refused", "node", "spiffe://td/ns/x") != nil })
		refused := p.logLineWith("node refused", "node", "spiffe://td/ns/x")
		assert.Contains(t, refused["reason"], "has no entry in the scope map")
		p.stop(t)
	})

	t.Run("cn, scope by cluster", func(t *testing.T) {
		p := startServe(t, t.TempDir(), nil, append(tlsFlags, "--node-identity", "cn")...)
		cc := dialMTLS(t, pki, p.xds, "node-a")
		a := conv.ADS(t, cc, node("node-a", "node-a"), conv.WithTimeout(10*time.Second))
		a.Request(protocol.TypeCluster).ExpectResponse(conv.Names("node-a-web"))

		// node-a's certificate, naming node-b's cluster: refused.
		asB := conv.ADS(t, cc, node("node-a", "node-b"), conv.WithTimeout(10*time.Second))
		asB.Request(protocol.TypeSecret, "node-b-secret")
		err := asB.ExpectError(codes.PermissionDenied)
		assert.Contains(t, err.Error(), `node.cluster "node-b" is not the scope of the certificate's identity "node-a", which is "node-a"`)

		// A valid certificate whose identity has no scope directory: refused.
		c := conv.ADS(t, dialMTLS(t, pki, p.xds, "node-c"), node("node-c", "node-c"), conv.WithTimeout(10*time.Second))
		c.Request(protocol.TypeSecret, "upstream-ca")
		err = c.ExpectError(codes.PermissionDenied)
		assert.Contains(t, err.Error(), `scope "node-c" of identity "node-c" holds no resource`)
		// The stream ends before serve has written why: wait for the line.
		eventually(t, "the refusal of node-c to be logged", func() bool { return p.logLineWith("node refused", "node", "node-c") != nil })
		p.stop(t)
	})
}

// The README's run command, from the repository root as a new user types it,
// serves the edge example (ports moved by environment variables, so the test
// never collides with a server already running).
func TestBinaryREADMECommand(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	p := startServe(t, root, nil, "--config", "examples/edge")
	c := conv.ADS(t, dialInsecure(t, p.xds), node("edge-1", "edge"), conv.WithTimeout(10*time.Second))
	c.Request(protocol.TypeListener).ExpectResponse(conv.Names("internal", "public"))
	c.ACK()
	c.Request(protocol.TypeSecret, "upstream-ca").ExpectResponse(conv.Names("upstream-ca"))
	p.stop(t)
}
