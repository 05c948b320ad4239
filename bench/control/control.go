// Package control is the small HTTP API every benchmarked server exposes on a
// loopback port, so that one load generator measures leanxds, its peers and the
// raw gRPC floor the same way:
//
//	GET  /stats[?gc=1]                       Stats: memory, CPU seconds, resource counts
//	POST /commit?kind=K&name=X&seq=S&size=B  Commit: apply one benchmark change
//
// The kinds of change are the three the benchmark times: KindEndpoint (one
// endpoint of cluster X changes), KindCluster (cluster X is added, with its
// endpoints) and KindAll (every cluster changes). size is only for the floor,
// which broadcasts a message of that many bytes instead.
//
// Every benchmarked server, the go-control-plane peer in its own module too, serves
// it with this code, so their figures are read the same way.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// The kinds of change a commit applies.
const (
	// KindEndpoint changes the port of one endpoint of one cluster (scenario a).
	KindEndpoint = "endpoint"
	// KindCluster adds one cluster and its endpoints (scenario b).
	KindCluster = "cluster"
	// KindAll changes every cluster (scenario c).
	KindAll = "all"
)

// Stats is what a server reports of itself.
type Stats struct {
	// RSSBytes is the resident set size (VmRSS of /proc/self/status).
	RSSBytes int64 `json:"rss_bytes"`
	// HeapBytes is the Go heap in use by objects (runtime/metrics
	// /memory/classes/heap/objects:bytes), after a GC when asked with gc=1.
	HeapBytes int64 `json:"heap_bytes"`
	// CPUSeconds is user plus system CPU time of the process so far.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Goroutines is runtime.NumGoroutine().
	Goroutines int `json:"goroutines"`
	// StackBytes is the memory of goroutine stacks (runtime/metrics
	// /memory/classes/heap/stacks:bytes).
	StackBytes int64 `json:"stack_bytes"`
	// Resource counts of the served configuration.
	Counts
}

// Counts are the resources a server holds, by type.
type Counts struct {
	Clusters    int `json:"clusters"`
	Assignments int `json:"assignments"`
	Listeners   int `json:"listeners"`
	Routes      int `json:"routes"`
}

// Commit is the answer to a commit.
type Commit struct {
	// StartUnixNano is when the server began the commit (wall clock): fan-out
	// latency is measured from it.
	StartUnixNano int64 `json:"start_unix_nano"`
	// DurationNanos is how long the commit call itself took.
	DurationNanos int64 `json:"duration_nanos"`
}

// Server is what a benchmarked server implements for the API.
type Server interface {
	// Apply makes one change of the given kind; seq numbers the changes of a run
	// so each one differs from the last.
	Apply(kind, name string, seq, size int) error
	// Counts returns the resources held now.
	Counts() Counts
}

// Handler serves the API for s on mux.
func Handler(mux *http.ServeMux, s Server) {
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		st := ReadStats(r.URL.Query().Get("gc") == "1")
		st.Counts = s.Counts()
		writeJSON(w, st)
	})
	mux.HandleFunc("POST /commit", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		seq, _ := strconv.Atoi(q.Get("seq"))
		size, _ := strconv.Atoi(q.Get("size"))
		start := time.Now()
		if err := s.Apply(q.Get("kind"), q.Get("name"), seq, size); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, Commit{StartUnixNano: start.UnixNano(), DurationNanos: int64(time.Since(start))})
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ReadStats reads the process's own memory and CPU figures, after a full GC
// when gc is set (so the heap figure is what is live).
func ReadStats(gc bool) Stats {
	if gc {
		// Two collections: caches that sync.Pool keeps (gRPC's buffers) last one
		// GC in its victim cache, so after two what is left is held. The second
		// returns freed pages: RSS then counts what is held.
		runtime.GC()
		debug.FreeOSMemory()
	}
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(samples)
	st := Stats{RSSBytes: rss(), CPUSeconds: cpuSeconds(), Goroutines: runtime.NumGoroutine()}
	if samples[0].Value.Kind() == metrics.KindUint64 {
		st.HeapBytes = int64(samples[0].Value.Uint64())
	}
	if samples[1].Value.Kind() == metrics.KindUint64 {
		st.StackBytes = int64(samples[1].Value.Uint64())
	}
	return st
}

// rss returns VmRSS from /proc/self/status, in bytes.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// RaiseOpenFiles raises the soft open-files limit to the hard limit, so that a
// process can hold as many connections as the machine allows it.
func RaiseOpenFiles() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}

// Client calls a server's control API.
type Client struct {
	// Base is the API's URL, such as http://127.0.0.1:18001.
	Base string
	HTTP *http.Client
}

// NewClient returns a client of the API at base.
func NewClient(base string) *Client {
	return &Client{Base: strings.TrimSuffix(base, "/"), HTTP: &http.Client{Timeout: 2 * time.Minute}}
}

// Stats reads the server's figures, after a GC when gc is set.
func (c *Client) Stats(ctx context.Context, gc bool) (Stats, error) {
	var st Stats
	u := c.Base + "/stats"
	if gc {
		u += "?gc=1"
	}
	err := c.do(ctx, http.MethodGet, u, &st)
	return st, err
}

// Commit asks the server to apply one change.
func (c *Client) Commit(ctx context.Context, kind, name string, seq, size int) (Commit, error) {
	q := url.Values{"kind": {kind}, "name": {name}, "seq": {strconv.Itoa(seq)}, "size": {strconv.Itoa(size)}}
	var cm Commit
	err := c.do(ctx, http.MethodPost, c.Base+"/commit?"+q.Encode(), &cm)
	return cm, err
}

// Wait polls the API until it answers or ctx ends.
func (c *Client) Wait(ctx context.Context) error {
	for {
		if _, err := c.Stats(ctx, false); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("control API at %s never answered: %w", c.Base, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Client) do(ctx context.Context, method, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}

// ServerKeepalive is the keepalive every benchmarked server runs with: grpc-go's
// defaults but for a Timeout of 5 minutes instead of 20 seconds. grpc-go sets each
// connection's TCP_USER_TIMEOUT to it; the generator shares the machine's two
// cores with the server, and a client starved of CPU for more than 20 seconds
// during a large fan-out would have its connection aborted by the kernel
// (nstat's TcpExtTCPAbortOnTimeout): a measure of the shared machine, not of the
// server. The go-control-plane peer sets the same.
func ServerKeepalive() grpc.ServerOption {
	return grpc.KeepaliveParams(keepalive.ServerParameters{Timeout: 5 * time.Minute})
}

// ServeUntil serves mux, the control API, on addr and returns when the process is
// told to stop (SIGINT, SIGTERM) or after timeout, whichever comes first: a
// benchmark server exits by itself. name prefixes what it says on a timeout.
func ServeUntil(name, addr string, mux *http.ServeMux, timeout time.Duration) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(lis, mux) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(timeout):
		fmt.Fprintf(os.Stderr, "%s: -timeout reached, exiting\n", name)
	}
	return nil
}
