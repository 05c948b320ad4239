package source

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// defaultLimits are the read limits of a Dir made with no options.
var defaultLimits = readLimits{fileBytes: DefaultMaxFileBytes, dirBytes: DefaultMaxDirBytes}

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

// edsCluster is a resource file holding an EDS cluster whose endpoints come from
// edsConfig, a ConfigSource in YAML flow style.
func edsCluster(name, edsConfig string) string {
	return "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: " + name +
		"\ntype: EDS\nconnect_timeout: 1s\neds_cluster_config:\n  eds_config: " + edsConfig + "\n"
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

// eventually polls cond every 10ms until it holds, failing the test after 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newSource returns a Dir of dir over a new store, reading files at once (no
// quiet period) unless the test sets one.
func newSource(t testing.TB, dir string) (*Dir, *store.Store) {
	t.Helper()
	st := store.New()
	return NewDir(dir, st, DirOptions{Debounce: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), st
}

// setDebounce sets the quiet period and the debounce of d, as
// DirOptions.Debounce does.
func setDebounce(d *Dir, p time.Duration) {
	d.debounce, d.quiet.period = p, p
}

// reload reloads d, waiting for its files to be quiet.
func reload(d *Dir) (store.Result, error) { return d.Reload(context.Background(), false) }

// reloadRecord is one reload's outcome and result.
type reloadRecord struct {
	outcome Outcome
	res     store.Result
}

// recordOutcomes records the outcomes of d's reloads from now on; set it
// before Run starts. It returns the outcomes, and the outcomes with results.
func recordOutcomes(d *Dir) (outcomes func() []Outcome, records func() []reloadRecord) {
	var mu sync.Mutex
	var recs []reloadRecord
	d.onReload = func(o Outcome, res store.Result) {
		mu.Lock()
		recs = append(recs, reloadRecord{o, res})
		mu.Unlock()
	}
	records = func() []reloadRecord {
		mu.Lock()
		defer mu.Unlock()
		return append([]reloadRecord(nil), recs...)
	}
	outcomes = func() []Outcome {
		var out []Outcome
		for _, r := range records() {
			out = append(out, r.outcome)
		}
		return out
	}
	return outcomes, records
}

// startRun runs d until the test ends, and returns once Run watches the
// directory: a change made after is seen. It returns Run's watcher.
func startRun(t *testing.T, d *Dir) *fsnotify.Watcher {
	t.Helper()
	watching := make(chan *fsnotify.Watcher, 1)
	d.onWatch = func(w *fsnotify.Watcher) { watching <- w }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	select {
	case w := <-watching:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not start watching")
		return nil
	}
}

// versionOf returns the version of cluster name in scope, "" if there is none.
func versionOf(st *store.Store, scope, name string) string {
	e := st.View().Table(scope, protocol.TypeCluster).Get(name)
	if e == nil {
		return ""
	}
	return e.Version
}

// chtimes sets the modification time of dir/name.
func chtimes(dir, name string, t time.Time) error {
	return os.Chtimes(filepath.Join(dir, name), t, t)
}
