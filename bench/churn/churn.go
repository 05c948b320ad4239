// Package churn is the churn soak: clients come and go in waves against one
// leanxds server, in this process, while its config changes every second; among
// them, hostile clients that open streams and send nothing, and clients that
// keep asking and never read. When they have all gone, the server must hold what
// it held before they came: no stream, no connection, and goroutines, open files
// and Go heap back to their baseline within stated margins (Margins).
//
// In bench/ (the benchmark's own module), `go test -run TestChurnSoak .` runs
// it for a few seconds; `go test -run TestChurnSoak -churn.duration=10m -timeout 0 .`
// or `go run ./cmd/churnsoak -duration 10m` for minutes.
package churn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/leanserver"
	"github.com/leanxds/leanxds/bench/load"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/stream"
)

// Config is one soak.
type Config struct {
	// Duration is how long waves of clients keep coming; the last wave ends
	// after it.
	Duration time.Duration
	// Clients are the well-behaved clients of a wave, one connection each:
	// they connect, get their whole config (as Envoy asks it), ACK it, and leave.
	Clients int
	// Silent are the streams of a wave that send no request, all on one
	// connection: twice MaxStreamsPerConn of them, so that half wait for a slot.
	// The server ends them (FirstRequestTimeout).
	Silent int
	// Stalled are the clients of a wave that keep changing their subscription
	// and never read: the server closes their connections (SendTimeout).
	Stalled int
	// ChangeEvery is how often the config changes (one endpoint of one
	// cluster), from the start to the end of the waves.
	ChangeEvery time.Duration
	// Workload is the config served.
	Workload xdstest.Workload
	// The server's limits (stream.Options).
	FirstRequestTimeout, SendTimeout time.Duration
	MaxStreamsPerConn                int
	// Log receives a line per wave; nil discards them.
	Log io.Writer
}

// Defaults fills in what c leaves zero: waves of 200 clients, 100 silent
// streams and 5 stalled clients, a change a second, a small workload, and
// timeouts of a second, so that a wave lasts a few seconds.
func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Clients <= 0 {
		c.Clients = 200
	}
	if c.MaxStreamsPerConn <= 0 {
		c.MaxStreamsPerConn = 50
	}
	if c.Silent < 0 {
		c.Silent = 0
	} else if c.Silent == 0 {
		c.Silent = 2 * c.MaxStreamsPerConn
	}
	if c.Stalled == 0 {
		c.Stalled = 5
	}
	if c.ChangeEvery <= 0 {
		c.ChangeEvery = time.Second
	}
	if c.Workload == (xdstest.Workload{}) {
		c.Workload = xdstest.Workload{Clusters: 40, EndpointsPerCluster: 2, Listeners: 4, Routes: 4, VirtualHostsPerRoute: 3}
	}
	if c.FirstRequestTimeout <= 0 {
		c.FirstRequestTimeout = time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Usage is what the process holds at one moment.
type Usage struct {
	// Streams and Awaiting are the server's streams: those that named their
	// node, and those awaiting their first request. Conns are its connections.
	Streams  int `json:"streams"`
	Awaiting int `json:"awaiting"`
	Conns    int `json:"conns"`
	// Goroutines, FDs (open files, -1 where /proc/self/fd is not) and
	// HeapBytes (Go heap objects after two collections) are the process's,
	// clients included.
	Goroutines int    `json:"goroutines"`
	FDs        int    `json:"fds"`
	HeapBytes  uint64 `json:"heap_bytes"`
}

func (u Usage) String() string {
	return fmt.Sprintf("%d streams, %d awaiting, %d conns, %d goroutines, %d fds, %.1f MiB heap",
		u.Streams, u.Awaiting, u.Conns, u.Goroutines, u.FDs, float64(u.HeapBytes)/(1<<20))
}

// Result is what a soak did and measured.
type Result struct {
	Duration time.Duration `json:"duration"`
	Waves    int           `json:"waves"`
	// Clients counts the well-behaved clients; Failed those that never got
	// their whole config.
	Clients int `json:"clients"`
	Failed  int `json:"failed"`
	// Silent and Stalled count the hostile ones.
	Silent  int `json:"silent"`
	Stalled int `json:"stalled"`
	Changes int `json:"changes"`
	// FirstRequestTimeouts and SendTimeouts count the streams the server's
	// timeouts ended: every silent stream and every stalled client should be.
	FirstRequestTimeouts uint64 `json:"first_request_timeouts"`
	SendTimeouts         uint64 `json:"send_timeouts"`
	// Baseline is measured after a first wave (lazily made state: protobuf
	// descriptors, gRPC's pools, the initial config's encoded frames), Peak is
	// the largest per-wave sample (while the wave's clients are connected), End
	// is once every client has gone.
	Baseline Usage `json:"baseline"`
	Peak     Usage `json:"peak"`
	End      Usage `json:"end"`
}

// Margins are how far above its baseline the end state may be. Streams and
// connections must be back to none.
type Margins struct {
	// Goroutines: timers and gRPC's idle workers may linger a moment.
	Goroutines int
	FDs        int
	// HeapBytes covers what the config changes themselves leave: the store's
	// change log (bounded at 4,096 changes) and its current tables. A 3-minute
	// soak (180 changes, 17,600 clients) ends 46 KiB above its baseline.
	HeapBytes uint64
}

// DefaultMargins are the margins of the soak's check.
var DefaultMargins = Margins{Goroutines: 5, FDs: 0, HeapBytes: 1 << 20}

// Check reports what did not come back within m, and clients that failed.
func (r *Result) Check(m Margins) error {
	var errs []error
	if r.Failed > 0 {
		errs = append(errs, fmt.Errorf("%d of %d clients never got their whole config", r.Failed, r.Clients))
	}
	if r.FirstRequestTimeouts != uint64(r.Silent) {
		errs = append(errs, fmt.Errorf("%d of %d silent streams were ended by the first-request timeout", r.FirstRequestTimeouts, r.Silent))
	}
	if r.SendTimeouts != uint64(r.Stalled) {
		errs = append(errs, fmt.Errorf("%d of %d stalled clients were cut off by the send timeout", r.SendTimeouts, r.Stalled))
	}
	e, b := r.End, r.Baseline
	if e.Streams != 0 || e.Awaiting != 0 || e.Conns != 0 {
		errs = append(errs, fmt.Errorf("the server still holds %d streams, %d awaiting their first request, %d connections", e.Streams, e.Awaiting, e.Conns))
	}
	if e.Goroutines > b.Goroutines+m.Goroutines {
		errs = append(errs, fmt.Errorf("%d goroutines, baseline %d + %d", e.Goroutines, b.Goroutines, m.Goroutines))
	}
	if b.FDs >= 0 && e.FDs > b.FDs+m.FDs {
		errs = append(errs, fmt.Errorf("%d open files, baseline %d + %d", e.FDs, b.FDs, m.FDs))
	}
	if e.HeapBytes > b.HeapBytes+m.HeapBytes {
		errs = append(errs, fmt.Errorf("%.1f MiB heap, baseline %.1f MiB + %.1f",
			float64(e.HeapBytes)/(1<<20), float64(b.HeapBytes)/(1<<20), float64(m.HeapBytes)/(1<<20)))
	}
	return errors.Join(errs...)
}

// soak is one running soak: the server and what the waves need of it.
type soak struct {
	cfg  Config
	srv  *stream.Server
	lean *leanserver.Server
	addr string
	// names are the EDS resources, which stalled clients subscribe to over and
	// over; the first is the one the changes change.
	names []string
	res   *Result
	next  int // the next client's node number
}

// Run runs a soak.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	lean, err := leanserver.New(cfg.Workload.Resources())
	if err != nil {
		return nil, err
	}
	srv := stream.New(lean.Store(), stream.Options{
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		FirstRequestTimeout: cfg.FirstRequestTimeout,
		SendTimeout:         cfg.SendTimeout,
		MaxStreamsPerConn:   cfg.MaxStreamsPerConn,
	})
	g := grpc.NewServer(append(srv.GRPCOptions(), control.ServerKeepalive())...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = g.Serve(srv.Listener(lis)) }()
	defer g.Stop()

	s := &soak{cfg: cfg, srv: srv, lean: lean, addr: lis.Addr().String(), res: &Result{Duration: cfg.Duration}}
	for e := range lean.Store().View().Table(stream.DefaultScope, protocol.TypeEndpoint).All() {
		s.names = append(s.names, e.Name)
	}
	if len(s.names) == 0 {
		return nil, errors.New("churn: the workload has no endpoints")
	}

	// A first wave, before the baseline: what it leaves is made once.
	if err := s.wave(ctx); err != nil {
		return nil, err
	}
	if err := s.settle(ctx); err != nil {
		return nil, err
	}
	base := s.usage(true)
	*s.res = Result{Duration: cfg.Duration, Baseline: base, Peak: base}
	limits := srv.LimitStats()
	fmt.Fprintf(cfg.Log, "baseline: %v\n", s.res.Baseline)

	changes, stopChanges := s.changes(ctx)
	start := time.Now()
	var werr error
	for time.Since(start) < cfg.Duration && werr == nil && ctx.Err() == nil {
		werr = s.wave(ctx)
	}
	s.res.Changes = stopChanges()
	<-changes
	if werr != nil {
		return s.res, werr
	}
	err = s.settle(ctx)
	s.res.End = s.usage(true)
	end := srv.LimitStats()
	s.res.FirstRequestTimeouts = end.FirstRequestTimeouts - limits.FirstRequestTimeouts
	s.res.SendTimeouts = end.SendTimeouts - limits.SendTimeouts
	fmt.Fprintf(cfg.Log, "end: %v\n", s.res.End)
	return s.res, err
}

// changes changes one endpoint every ChangeEvery until stopped; stop returns
// how many changes were made.
func (s *soak) changes(ctx context.Context) (done <-chan struct{}, stop func() int) {
	ctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	n := 0
	go func() {
		defer close(finished)
		t := time.NewTicker(s.cfg.ChangeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n++
				if err := s.lean.Apply(control.KindEndpoint, s.names[0], n, 0); err != nil {
					fmt.Fprintf(s.cfg.Log, "change %d: %v\n", n, err)
				}
			}
		}
	}()
	return finished, func() int { cancel(); <-finished; return n }
}

// wave runs one wave: its well-behaved clients connect, get their config and
// leave; its silent streams and stalled clients stay until the server has
// ended them, then leave too.
func (s *soak) wave(ctx context.Context) error {
	cfg := s.cfg
	// The server's timeouts end the hostile clients; this bounds the wait for
	// it, should they not.
	wctx, cancel := context.WithTimeout(ctx, time.Minute+4*(cfg.FirstRequestTimeout+cfg.SendTimeout))
	defer cancel()
	var hostile sync.WaitGroup
	var herrs []error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		herrs = append(herrs, err)
		mu.Unlock()
	}
	hostile.Go(func() {
		if err := silentStreams(wctx, s.addr, cfg.Silent); err != nil {
			fail(err)
		}
	})
	for i := range cfg.Stalled {
		hostile.Go(func() {
			if err := stalledClient(wctx, s.addr, s.node("stalled", i), s.names); err != nil {
				fail(err)
			}
		})
	}

	w := load.NewWorker(load.WorkerConfig{Server: s.addr, FirstID: s.next, Clients: cfg.Clients, Conns: cfg.Clients})
	s.next += cfg.Clients
	cctx, ccancel := context.WithTimeout(ctx, time.Minute)
	rep, err := w.Connect(cctx, time.Now())
	ccancel()
	if err == nil {
		s.peak(s.usage(true))
	}
	_ = w.Close()
	if err != nil {
		return err
	}
	s.res.Waves++
	s.res.Clients += rep.Clients
	s.res.Failed += rep.Failed
	s.res.Silent += cfg.Silent
	s.res.Stalled += cfg.Stalled

	// The hostile clients leave once the server has ended every one of them,
	// which its timeouts bound.
	hostile.Wait()
	fmt.Fprintf(cfg.Log, "wave %d: %d clients (%d failed), %d silent streams, %d stalled clients; %v\n",
		s.res.Waves, rep.Clients, rep.Failed, cfg.Silent, cfg.Stalled, s.usage(false))
	return errors.Join(herrs...)
}

func (s *soak) node(kind string, i int) *corev3.Node {
	return &corev3.Node{Id: fmt.Sprintf("%s-%d-%d", kind, s.res.Waves, i), Cluster: "churn"}
}

func (s *soak) peak(u Usage) {
	p := &s.res.Peak
	p.Streams, p.Awaiting, p.Conns = max(p.Streams, u.Streams), max(p.Awaiting, u.Awaiting), max(p.Conns, u.Conns)
	p.Goroutines, p.FDs, p.HeapBytes = max(p.Goroutines, u.Goroutines), max(p.FDs, u.FDs), max(p.HeapBytes, u.HeapBytes)
}

// settle waits, a bounded while, for the server to hold no stream and no
// connection, and for the goroutines of what ended to exit.
func (s *soak) settle(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	prev := -1
	for {
		u := s.usage(false)
		if u.Streams == 0 && u.Awaiting == 0 && u.Conns == 0 && u.Goroutines == prev {
			return nil
		}
		prev = u.Goroutines
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not settle: %v", u)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// usage measures the process, after two collections when gc is set (the
// second frees what sync.Pool's victim cache kept).
func (s *soak) usage(gc bool) Usage {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	l := s.srv.LimitStats()
	u := Usage{Streams: len(s.srv.Streams()), Awaiting: l.AwaitingFirstRequest, Conns: l.Conns,
		Goroutines: runtime.NumGoroutine(), FDs: openFiles()}
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(m)
	u.HeapBytes = m[0].Value.Uint64()
	return u
}

// openFiles counts the process's open files; -1 where /proc/self/fd is not.
func openFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds) - 1 // ReadDir's own
}

var streamDesc = grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

const (
	adsSotW  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	adsDelta = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

// silentStreams opens n streams on one connection and sends nothing on them;
// it returns once the server has ended every one.
func silentStreams(ctx context.Context, addr string, n int) error {
	if n == 0 {
		return nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	errs := make(chan error, n)
	for range n {
		go func() {
			// Past the server's streams per connection, NewStream waits for a
			// slot: gRPC honours the limit the server announced.
			st, err := cc.NewStream(ctx, &streamDesc, adsSotW)
			if err == nil {
				err = st.RecvMsg(new(discoveryv3.DiscoveryResponse))
				if err == nil {
					err = errors.New("a silent stream was sent a response")
				} else {
					err = nil
				}
			}
			errs <- err
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("silent streams: %w", ctx.Err())
	}
	return errors.Join(all...)
}

// stalledClient asks, on delta ADS, for every cluster and then every endpoint
// assignment, drops them and asks again, and again, and never reads: the
// server's sends to it block once its window and gRPC's send quota are full.
// It returns once the server has closed its connection.
func stalledClient(ctx context.Context, addr string, node *corev3.Node, names []string) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		return err
	}
	defer cc.Close()
	st, err := cc.NewStream(ctx, &streamDesc, adsDelta)
	if err != nil {
		return err
	}
	req := &discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: protocol.TypeCluster, ResourceNamesSubscribe: []string{"*"}}
	for i := 0; ; i++ {
		if err := st.SendMsg(req); err != nil {
			break // the server closed the connection; SendMsg says no more
		}
		req = &discoveryv3.DeltaDiscoveryRequest{TypeUrl: protocol.TypeEndpoint}
		if i%2 == 0 {
			req.ResourceNamesSubscribe = names
		} else {
			req.ResourceNamesUnsubscribe = names
		}
	}
	// What the server sent before it closed the connection, then its end.
	for {
		if err := st.RecvMsg(new(discoveryv3.DeltaDiscoveryResponse)); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stalled client: %w", ctx.Err())
			}
			return nil
		}
	}
}
