package conformance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3" // the bootstrap's HttpProtocolOptions
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/internal/xdstest"
)

// envoySkipReason says why the Envoy scenarios cannot run, "" when they can.
func envoySkipReason() string {
	if os.Getenv("ENVOY_BIN") == "" {
		return "set ENVOY_BIN=/path/to/envoy to run the Envoy scenarios (Envoy 1.30+)"
	}
	return ""
}

// envoyDriver is an Envoy process, started from ENVOY_BIN with a bootstrap that
// points ADS (GRPC, or DELTA_GRPC) at the leanxds server. Its listener, admin
// interface and the backends all live on 127.0.0.1; traffic is real HTTP
// requests through the listener to Go HTTP backends, each answering its id.
type envoyDriver struct {
	srv    *xdsServer
	nodeID string
	scope  string
	delta  bool
	// port is the listener's, admin the admin interface's.
	port, admin int
	dir         string
	client      *http.Client
}

func newEnvoyDriver(t *testing.T, srv *xdsServer, nodeID, scope string, delta bool) *envoyDriver {
	return &envoyDriver{srv: srv, nodeID: nodeID, scope: scope, delta: delta,
		port: freePort(t), admin: freePort(t), dir: t.TempDir(),
		client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

// listener is an HTTP listener on the driver's loopback port.
func (d *envoyDriver) listener(cfg config) *listenerv3.Listener {
	l := xdstest.Listener(svcListener, uint32(d.port), svcRoute)
	l.GetAddress().GetSocketAddress().Address = "127.0.0.1"
	return cfg.shapeListener(l)
}

// start writes the bootstrap, starts Envoy and waits until its admin interface
// says it is ready (it has its listeners and clusters).
func (d *envoyDriver) start(t *testing.T) {
	boot := filepath.Join(d.dir, "envoy.json")
	if err := os.WriteFile(boot, d.bootstrap(), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(d.dir, "envoy.log")
	cmd := exec.Command(os.Getenv("ENVOY_BIN"), "-c", boot, "--disable-hot-restart", "--concurrency", "1",
		"--log-level", "info", "--log-path", logPath)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", os.Getenv("ENVOY_BIN"), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("Envoy's log (%s):\n%s", logPath, tail(logPath, 40))
		}
	})
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("Envoy exited: %v\n%s", err, tail(logPath, 40))
		default:
		}
		if body, err := d.adminGet("/ready"); err == nil && strings.TrimSpace(body) == "LIVE" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Envoy not ready within %s\n%s", waitFor, tail(logPath, 40))
}

// bootstrap is Envoy's bootstrap: the node, the admin interface, ADS to leanxds
// for listeners and clusters (routes and endpoints follow over ADS as the
// resources say), and the static cluster that reaches leanxds over HTTP/2.
func (d *envoyDriver) bootstrap() []byte {
	host, port, _ := net.SplitHostPort(d.srv.addr)
	apiType := "GRPC"
	if d.delta {
		apiType = "DELTA_GRPC"
	}
	addr := func(host string, port any) map[string]any {
		return map[string]any{"socket_address": map[string]any{"address": host, "port_value": port}}
	}
	ads := map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"}
	b := map[string]any{
		"node":  map[string]any{"id": d.nodeID, "cluster": d.scope},
		"admin": map[string]any{"address": addr("127.0.0.1", d.admin)},
		"dynamic_resources": map[string]any{
			"ads_config": map[string]any{
				"api_type":                       apiType,
				"transport_api_version":          "V3",
				"set_node_on_first_message_only": true,
				"grpc_services":                  []any{map[string]any{"envoy_grpc": map[string]any{"cluster_name": "leanxds"}}},
			},
			"lds_config": ads,
			"cds_config": ads,
		},
		"static_resources": map[string]any{"clusters": []any{map[string]any{
			"name":            "leanxds",
			"type":            "STATIC",
			"connect_timeout": "1s",
			"typed_extension_protocol_options": map[string]any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
					"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
					"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
				},
			},
			"load_assignment": map[string]any{
				"cluster_name": "leanxds",
				"endpoints": []any{map[string]any{"lb_endpoints": []any{
					map[string]any{"endpoint": map[string]any{"address": addr(host, mustAtoi(port))}},
				}}},
			},
		}}},
	}
	raw, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		panic(err)
	}
	return raw
}

// send makes n HTTP requests through Envoy's listener. Anything but a 200 from a
// backend is a failure, a 503 included.
func (d *envoyDriver) send(ctx context.Context, n int) []reply {
	out := make([]reply, 0, n)
	url := fmt.Sprintf("http://127.0.0.1:%d/", d.port)
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			out = append(out, reply{err: err})
			continue
		}
		resp, err := d.client.Do(req)
		if err != nil {
			out = append(out, reply{err: err})
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			out = append(out, reply{err: fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))})
			continue
		}
		out = append(out, reply{backend: string(body)})
	}
	return out
}

// check reads Envoy's /config_dump: every dynamic listener, route and cluster is
// at a version the server sent this node, and none is still warming (R16).
func (d *envoyDriver) check(t *testing.T) {
	t.Helper()
	body, err := d.adminGet("/config_dump?include_eds")
	if err != nil {
		t.Errorf("config_dump: %v", err)
		return
	}
	var dump envoyConfigDump
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Errorf("config_dump does not parse: %v", err)
		return
	}
	sent := map[string][]string{}
	for _, r := range d.srv.log.responsesTo(d.nodeID, time.Time{}) {
		sent[r.typeURL] = append(sent[r.typeURL], r.version)
		for _, v := range r.versions {
			sent[r.typeURL] = append(sent[r.typeURL], v) // delta: each resource's own version
		}
	}
	at := func(typeURL, name, version string) {
		if !slices.Contains(sent[typeURL], version) {
			t.Errorf("Envoy's config_dump shows %s %s at version %q, which the server never sent it", shortType(typeURL), name, version)
		}
	}
	for _, c := range dump.Configs {
		for _, l := range c.DynamicListeners {
			if l.WarmingState != nil {
				t.Errorf("R16: listener %s is still warming", l.Name)
			}
			if l.ActiveState != nil {
				at(lds, l.Name, l.ActiveState.VersionInfo)
			}
		}
		for _, r := range c.DynamicRouteConfigs {
			at(rds, r.RouteConfig.Name, r.VersionInfo)
		}
		for _, cl := range c.DynamicActiveClusters {
			at(cds, cl.Cluster.Name, cl.VersionInfo)
		}
		for _, cl := range c.DynamicWarmingClusters {
			t.Errorf("R16: cluster %s is still warming", cl.Cluster.Name)
		}
	}
}

// envoyConfigDump is what check reads of Envoy's admin /config_dump
// (envoy.admin.v3.ConfigDump, in proto field names).
type envoyConfigDump struct {
	Configs []struct {
		Type             string `json:"@type"`
		DynamicListeners []struct {
			Name        string `json:"name"`
			ActiveState *struct {
				VersionInfo string `json:"version_info"`
			} `json:"active_state"`
			WarmingState *struct {
				VersionInfo string `json:"version_info"`
			} `json:"warming_state"`
		} `json:"dynamic_listeners"`
		DynamicRouteConfigs []struct {
			VersionInfo string `json:"version_info"`
			RouteConfig struct {
				Name string `json:"name"`
			} `json:"route_config"`
		} `json:"dynamic_route_configs"`
		DynamicActiveClusters  []envoyDumpedCluster `json:"dynamic_active_clusters"`
		DynamicWarmingClusters []envoyDumpedCluster `json:"dynamic_warming_clusters"`
	} `json:"configs"`
}

type envoyDumpedCluster struct {
	VersionInfo string `json:"version_info"`
	Cluster     struct {
		Name string `json:"name"`
	} `json:"cluster"`
}

func (d *envoyDriver) adminGet(path string) (string, error) {
	resp, err := d.client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", d.admin, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("admin %s: HTTP %d", path, resp.StatusCode)
	}
	return string(body), nil
}

// startHTTPBackends starts an HTTP server on 127.0.0.1 for each backend id, each
// answering every request with its id.
func startHTTPBackends(t *testing.T) backends {
	b := backends{}
	for _, id := range backendIDs {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, id)
		}))
		t.Cleanup(s.Close)
		b[id] = strings.TrimPrefix(s.URL, "http://")
	}
	return b
}

// freePort returns a port of 127.0.0.1 nobody listens on now.
func freePort(t *testing.T) int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

func mustAtoi(s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		panic(err)
	}
	return n
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// expectWildcardSubscriptions checks that Envoy subscribed to listeners and clusters as a
// wildcard (R11 over SotW: a first request naming nothing; D4 over delta) and that
// the server took it so.
func expectWildcardSubscriptions() step {
	return step{what: "listeners and clusters are wildcard subscriptions", do: func(j *journeyRun, who string) {
		st := j.srv.status(j.t, j.nodeID(who), nil)
		for _, u := range []string{lds, cds} {
			if !typeStatus(st, u).Wildcard {
				j.t.Errorf("the server does not hold %s as a wildcard subscription", shortType(u))
			}
		}
		for _, r := range j.srv.log.requestsOf(j.nodeID(who)) {
			if r.sotw != nil && (r.typeURL() == lds || r.typeURL() == cds) {
				j.t.Logf("Envoy's first %s request names %v", shortType(r.typeURL()), r.sotw.GetResourceNames())
				break
			}
		}
	}}
}

// TestEnvoyHarness checks what the Envoy driver writes and reads against Envoy's
// own protos, so that the Envoy scenarios are right before an Envoy ever runs
// them: the bootstrap decodes as an envoy.config.bootstrap.v3.Bootstrap and
// passes its validation, and a config dump in Envoy's format (proto field names)
// reads back into what check uses.
func TestEnvoyHarness(t *testing.T) {
	srv := startServer(t)
	d := newEnvoyDriver(t, srv, "envoy-1", "scope-a", true)
	var boot bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(d.bootstrap(), &boot); err != nil {
		t.Fatalf("the bootstrap is not an Envoy bootstrap: %v\n%s", err, d.bootstrap())
	}
	if err := boot.ValidateAll(); err != nil {
		t.Errorf("the bootstrap is invalid: %v", err)
	}
	ads := boot.GetDynamicResources().GetAdsConfig()
	expectEqual(t, "ADS API type", ads.GetApiType(), corev3.ApiConfigSource_DELTA_GRPC)
	expectEqual(t, "xDS server", boot.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].
		GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(), uint32(mustAtoi(srv.addr[strings.LastIndex(srv.addr, ":")+1:])))
	expectEqual(t, "admin address", boot.GetAdmin().GetAddress().GetSocketAddress().GetAddress(), "127.0.0.1")

	l := d.listener(service("c1", "b1"))
	expectEqual(t, "listener address", l.GetAddress().GetSocketAddress().GetAddress(), "127.0.0.1")
	if err := l.ValidateAll(); err != nil {
		t.Errorf("the listener is invalid: %v", err)
	}

	dump := &adminv3.ConfigDump{Configs: []*anypb.Any{
		xdstest.Any(&adminv3.ListenersConfigDump{DynamicListeners: []*adminv3.ListenersConfigDump_DynamicListener{{
			Name: "svc", ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "v-l", Listener: xdstest.Any(l)},
		}}}),
		xdstest.Any(&adminv3.RoutesConfigDump{DynamicRouteConfigs: []*adminv3.RoutesConfigDump_DynamicRouteConfig{{
			VersionInfo: "v-r", RouteConfig: xdstest.Any(xdstest.SimpleRoute("svc-route", "c1")),
		}}}),
		xdstest.Any(&adminv3.ClustersConfigDump{
			DynamicActiveClusters:  []*adminv3.ClustersConfigDump_DynamicCluster{{VersionInfo: "v-c", Cluster: xdstest.Any(xdstest.Cluster("c1"))}},
			DynamicWarmingClusters: []*adminv3.ClustersConfigDump_DynamicCluster{{VersionInfo: "v-w", Cluster: xdstest.Any(xdstest.Cluster("c2"))}},
		}),
	}}
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(dump)
	if err != nil {
		t.Fatal(err)
	}
	var got envoyConfigDump
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Configs) != 3 {
		t.Fatalf("read %d configs of 3", len(got.Configs))
	}
	expectEqual(t, "listener", got.Configs[0].DynamicListeners[0].Name+" "+got.Configs[0].DynamicListeners[0].ActiveState.VersionInfo, "svc v-l")
	expectEqual(t, "route", got.Configs[1].DynamicRouteConfigs[0].RouteConfig.Name+" "+got.Configs[1].DynamicRouteConfigs[0].VersionInfo, "svc-route v-r")
	expectEqual(t, "cluster", got.Configs[2].DynamicActiveClusters[0].Cluster.Name+" "+got.Configs[2].DynamicActiveClusters[0].VersionInfo, "c1 v-c")
	expectEqual(t, "warming cluster", got.Configs[2].DynamicWarmingClusters[0].Cluster.Name, "c2")
}
