package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freePort returns a port of 127.0.0.1 that was free a moment ago, for a
// process that takes its ports from a file.
func freePort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	_, port, err := net.SplitHostPort(lis.Addr().String())
	require.NoError(t, err)
	return port
}

// The walk-through of examples/edge/README.md with the Envoy of ENVOY_BIN, on
// 127.0.0.1: leanxds serves the example, two backends run, requests through
// Envoy's public listener spread over both; a weight added in the directory
// moves them.
func TestEdgeExampleWalkthrough(t *testing.T) {
	envoy := os.Getenv("ENVOY_BIN")
	if envoy == "" {
		t.Skip("set ENVOY_BIN=/path/to/envoy to run the Envoy walk-through (Envoy 1.30+)")
	}
	// Two backends, as `go run ./examples/edge/backend -listen ...` starts them.
	var backends [2]string
	for i := range backends {
		srv := httptest.NewUnstartedServer(nil)
		name := srv.Listener.Addr().String()
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, name) })
		srv.Start()
		t.Cleanup(srv.Close)
		backends[i] = name
	}
	dir := copyExample(t, "edge")
	for i, port := range []string{"8081", "8082"} {
		_, p, err := net.SplitHostPort(backends[i])
		require.NoError(t, err)
		editFile(t, dir, "endpoints.yaml", "port_value: "+port+"}", "port_value: "+p+"}")
	}
	public := freePort(t)
	editFile(t, dir, "listeners.yaml", "{address: 0.0.0.0, port_value: 10000}", "{address: 127.0.0.1, port_value: "+public+"}")
	editFile(t, dir, "listeners.yaml", "port_value: 10001", "port_value: "+freePort(t))
	p := startServe(t, t.TempDir(), nil, "--config", dir)

	// Envoy, with the example's bootstrap pointed at the server's port.
	boot, err := os.ReadFile(filepath.Join(dir, "envoy.yaml"))
	require.NoError(t, err)
	_, xdsPort, err := net.SplitHostPort(p.xds)
	require.NoError(t, err)
	envoyAdmin := freePort(t)
	bootstrap := strings.Replace(string(boot), "port_value: 18000", "port_value: "+xdsPort, 1)
	bootstrap = strings.Replace(bootstrap, "port_value: 9902", "port_value: "+envoyAdmin, 1)
	bootPath := filepath.Join(t.TempDir(), "envoy.yaml")
	require.NoError(t, os.WriteFile(bootPath, []byte(bootstrap), 0o600))
	logPath := filepath.Join(t.TempDir(), "envoy.log")
	cmd := exec.Command(envoy, "-c", bootPath, "--disable-hot-restart", "--concurrency", "1", "--log-path", logPath)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("Envoy's log:\n%s", b)
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			select {
			case <-exited:
				t.Fatalf("Envoy exited while waiting for %s", what)
			default:
			}
			require.True(t, time.Now().Before(deadline), "timed out waiting for %s\n%s", what, p.logText())
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("Envoy to be ready", func() bool {
		code, body := get("http://127.0.0.1:" + envoyAdmin + "/ready")
		return code == http.StatusOK && body == "LIVE"
	})

	// `for i in $(seq 100); do curl -s 127.0.0.1:10000/; done | sort | uniq -c`
	spread := func() map[string]int {
		count := map[string]int{}
		for range 100 {
			code, body := get("http://127.0.0.1:" + public + "/")
			require.Equal(t, http.StatusOK, code, body)
			count[body]++
		}
		return count
	}
	even := spread()
	t.Logf("equal weights: %v", even)
	assert.InDelta(t, 50, even[backends[0]], 10, "round robin over the two endpoints: %v", even)
	assert.InDelta(t, 50, even[backends[1]], 10, "round robin over the two endpoints: %v", even)

	// The second endpoint gets a weight of 3: three requests in four.
	_, p2, err := net.SplitHostPort(backends[1])
	require.NoError(t, err)
	editFile(t, dir, "endpoints.yaml", "port_value: "+p2+"}\n", "port_value: "+p2+"}\n      load_balancing_weight: 3\n")
	var weighted map[string]int
	waitUntil("the requests to move to the heavier endpoint", func() bool {
		weighted = spread()
		return weighted[backends[1]] >= 65
	})
	weighted = spread() // a batch may straddle the update: the next one is all new
	t.Logf("weights 1 and 3: %v", weighted)
	assert.InDelta(t, 75, weighted[backends[1]], 10, "%v", weighted)
	p.stop(t)
}
