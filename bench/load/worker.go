package load

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// WorkerConfig is the share of the clients one worker simulates.
type WorkerConfig struct {
	// Server is the xDS server's host:port.
	Server string `json:"server"`
	// FirstID numbers the worker's first client (node ids are unique across workers).
	FirstID int `json:"first_id"`
	// Clients is how many clients (ADS streams) the worker runs, over Conns gRPC
	// connections (client i uses connection i%Conns).
	Clients int `json:"clients"`
	Conns   int `json:"conns"`
	// LocalIPs are the loopback source addresses connections are spread over.
	LocalIPs []string `json:"local_ips"`
	// Delta runs incremental xDS instead of state of the world.
	Delta bool `json:"delta"`
}

// Probe names the resource whose arrival marks a change as received.
type Probe struct {
	Seq  int64  `json:"seq"`
	Type string `json:"type"`
	Name string `json:"name"`
	typ  int
	id   int32 // Name's number in the worker's registry
}

// ConnectReport says how a worker's clients reached a fully ACKed configuration.
type ConnectReport struct {
	Clients int `json:"clients"`
	Ready   int `json:"ready"`
	Failed  int `json:"failed"`
	// ReadyNanos is, per client, the time from the common start to a fully
	// ACKed configuration; -1 for a client that never got there.
	ReadyNanos []int64 `json:"ready_nanos"`
	// ACKsPerSecond counts the ACKs sent in each second since the start.
	ACKsPerSecond []int64  `json:"acks_per_second"`
	Errors        []string `json:"errors,omitempty"`
	// FirstCluster is the smallest cluster name the clients were sent.
	FirstCluster string `json:"first_cluster"`
}

// CollectReport says when a change reached each client.
type CollectReport struct {
	// LatencyNanos are, for each client that received the change, the time from
	// the commit's start to its arrival.
	LatencyNanos []int64 `json:"latency_nanos"`
	// Missed counts clients the change did not reach in time.
	Missed int `json:"missed"`
	// Bytes are, per client that received it, the response bytes received
	// between arming and the change's arrival.
	Bytes []int64 `json:"bytes"`
}

// CheckReport is the final state of a worker's clients.
type CheckReport struct {
	Clients int `json:"clients"`
	// Ready counts clients that hold a fully ACKed configuration.
	Ready int `json:"ready"`
	// Min and max, over clients, of what each holds.
	Clusters, Assignments, Listeners, Routes [2]int
	// Incomplete counts clients missing some subscribed EDS or RDS resource, or
	// with an unACKed response.
	Incomplete int      `json:"incomplete"`
	ACKs       int64    `json:"acks"`
	Errors     []string `json:"errors,omitempty"`
}

// Worker runs a share of the clients: in this process (NewWorker) or in a child
// process (a remote worker speaking JSON lines to it).
type Worker interface {
	// Connect starts every client and returns once all hold a fully ACKed
	// configuration, or failed, or ctx ends. Times are measured from start.
	Connect(ctx context.Context, start time.Time) (ConnectReport, error)
	// Arm makes the clients watch for p's resource.
	Arm(ctx context.Context, p Probe) error
	// Collect waits until every client received the armed probe, or ctx ends,
	// and reports when, relative to commitStart (unix nanoseconds).
	Collect(ctx context.Context, seq, commitStart int64) (CollectReport, error)
	// Check reports the clients' final state.
	Check(ctx context.Context) (CheckReport, error)
	// Close ends every stream and connection.
	Close() error
}

// worker runs clients in this process.
type worker struct {
	cfg     WorkerConfig
	reg     *registry
	clients []*client
	ctx     context.Context
	cancel  context.CancelFunc

	mu    sync.Mutex
	conns []*grpc.ClientConn
	errs  []string
	nerrs int

	// parsed caches parsed SotW responses by content (see worker.parse).
	parsedMu sync.Mutex
	parsed   map[uint64]*parsed
	seed     maphash.Seed

	start      time.Time
	readyCount atomic.Int64
	failCount  atomic.Int64
	probe      atomic.Pointer[Probe]
	hits       atomic.Int64
	acks       atomic.Int64
	perSecond  [maxSeconds]atomic.Int64
}

// maxSeconds bounds the ACK timeline.
const maxSeconds = 4 * 3600

// NewWorker returns a worker that runs cfg's clients in this process.
func NewWorker(cfg WorkerConfig) Worker {
	if cfg.Conns <= 0 || cfg.Conns > cfg.Clients {
		cfg.Conns = cfg.Clients
	}
	if len(cfg.LocalIPs) == 0 {
		cfg.LocalIPs = []string{"127.0.0.1"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{cfg: cfg, reg: newRegistry(), ctx: ctx, cancel: cancel, parsed: map[uint64]*parsed{}, seed: maphash.MakeSeed()}
	w.clients = make([]*client, cfg.Clients)
	for i := range w.clients {
		w.clients[i] = &client{w: w, id: cfg.FirstID + i}
	}
	return w
}

func (w *worker) failed(c *client, err error) {
	w.failCount.Add(1)
	w.mu.Lock()
	w.nerrs++
	if len(w.errs) < 5 {
		w.errs = append(w.errs, fmt.Sprintf("client %d: %v", c.id, err))
	}
	w.mu.Unlock()
}

func (w *worker) acked(n int) {
	if n == 0 {
		return
	}
	w.acks.Add(int64(n))
	if s := int(time.Since(w.start) / time.Second); s >= 0 && s < maxSeconds {
		w.perSecond[s].Add(int64(n))
	}
}

// dialConcurrency bounds connections being set up at once, so that the
// server's accept backlog never overflows into SYN retries.
const dialConcurrency = 128

func (w *worker) Connect(ctx context.Context, start time.Time) (ConnectReport, error) {
	w.start = start
	sem := make(chan struct{}, dialConcurrency)
	var wg sync.WaitGroup
	for ci := range w.cfg.Conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, err := w.dial(ctx, ci)
			<-sem
			if err != nil {
				for i := ci; i < len(w.clients); i += w.cfg.Conns {
					w.clients[i].fail(err)
				}
				return
			}
			for i := ci; i < len(w.clients); i += w.cfg.Conns {
				go w.clients[i].run(w.ctx, cc)
			}
		}()
	}
	wg.Wait()
	for ctx.Err() == nil && int(w.readyCount.Load()+w.failCount.Load()) < len(w.clients) {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	rep := ConnectReport{Clients: len(w.clients), Ready: int(w.readyCount.Load()), Failed: int(w.failCount.Load())}
	rep.ReadyNanos = make([]int64, len(w.clients))
	for i, c := range w.clients {
		rep.ReadyNanos[i] = -1
		if c.ready.Load() {
			c.mu.Lock()
			rep.ReadyNanos[i] = c.readyAt - start.UnixNano()
			c.mu.Unlock()
		}
	}
	last := int(time.Since(start)/time.Second) + 1
	for s := range min(last, maxSeconds) {
		rep.ACKsPerSecond = append(rep.ACKsPerSecond, w.perSecond[s].Load())
	}
	w.mu.Lock()
	rep.Errors = append(rep.Errors, w.errs...)
	w.mu.Unlock()
	rep.FirstCluster = w.firstCluster()
	return rep, nil
}

// firstCluster is the smallest name among the EDS subscriptions.
func (w *worker) firstCluster() string {
	for _, c := range w.clients {
		c.mu.Lock()
		sub := c.st[tEDS].sub
		c.mu.Unlock()
		if sub != nil && len(sub.ids) > 0 {
			names := make([]string, len(sub.ids))
			for i, id := range sub.ids {
				names[i] = w.reg.name(id)
			}
			sort.Strings(names)
			return names[0]
		}
	}
	return ""
}

// dial opens connection ci from its source address and waits until it is ready.
func (w *worker) dial(ctx context.Context, ci int) (*grpc.ClientConn, error) {
	src := &net.TCPAddr{IP: net.ParseIP(w.cfg.LocalIPs[ci%len(w.cfg.LocalIPs)])}
	d := net.Dialer{LocalAddr: src, Timeout: 30 * time.Second}
	cc, err := grpc.NewClient("passthrough:///"+w.cfg.Server,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}),
		grpc.WithReadBufferSize(16<<10), grpc.WithWriteBufferSize(16<<10),
	)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.conns = append(w.conns, cc)
	w.mu.Unlock()
	cc.Connect()
	for {
		s := cc.GetState()
		if s == connectivity.Ready {
			return cc, nil
		}
		if s == connectivity.TransientFailure {
			return nil, fmt.Errorf("connection %d from %s: transient failure", ci, src.IP)
		}
		if !cc.WaitForStateChange(ctx, s) {
			return nil, fmt.Errorf("connection %d from %s: %w", ci, src.IP, ctx.Err())
		}
	}
}

func (w *worker) Arm(_ context.Context, p Probe) error {
	p.typ = -1
	for i, u := range typeURLs {
		if u == p.Type {
			p.typ = i
		}
	}
	if p.typ < 0 {
		return fmt.Errorf("probe of unknown type %q", p.Type)
	}
	p.id = w.reg.id([]byte(p.Name))
	w.hits.Store(0)
	w.probe.Store(&p)
	return nil
}

func (w *worker) Collect(ctx context.Context, seq, commitStart int64) (CollectReport, error) {
	p := w.probe.Load()
	if p == nil || p.Seq != seq {
		return CollectReport{}, errors.New("collect of a probe that is not armed")
	}
	live := int64(len(w.clients)) - w.failCount.Load()
	for ctx.Err() == nil && w.hits.Load() < live {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	var rep CollectReport
	for _, c := range w.clients {
		if c.hitSeq.Load() != seq {
			rep.Missed++
			continue
		}
		c.mu.Lock()
		rep.LatencyNanos = append(rep.LatencyNanos, c.hitAt-commitStart)
		rep.Bytes = append(rep.Bytes, c.hitBytes)
		c.mu.Unlock()
	}
	return rep, nil
}

func (w *worker) Check(context.Context) (CheckReport, error) {
	rep := CheckReport{Clients: len(w.clients), ACKs: w.acks.Load()}
	first := true
	span := func(r *[2]int, v int) {
		if first || v < r[0] {
			r[0] = v
		}
		if first || v > r[1] {
			r[1] = v
		}
	}
	for _, c := range w.clients {
		c.mu.Lock()
		if c.ready.Load() {
			rep.Ready++
		}
		subLen := func(t int) int {
			if s := c.st[t].sub; s != nil {
				return len(s.ids)
			}
			return 0
		}
		span(&rep.Clusters, c.st[tCDS].count)
		span(&rep.Assignments, subLen(tEDS))
		span(&rep.Listeners, c.st[tLDS].count)
		span(&rep.Routes, subLen(tRDS))
		first = false
		complete := c.err == nil && c.st[tCDS].acked && c.st[tLDS].acked && c.warm(tEDS) && c.warm(tRDS)
		for t := range numTypes {
			complete = complete && !c.st[t].ackPending && !c.st[t].subPending
		}
		if !complete {
			rep.Incomplete++
		}
		c.mu.Unlock()
	}
	w.mu.Lock()
	rep.Errors = append(rep.Errors, w.errs...)
	w.mu.Unlock()
	return rep, nil
}

func (w *worker) Close() error {
	w.cancel()
	w.mu.Lock()
	conns := w.conns
	w.conns = nil
	w.mu.Unlock()
	for _, cc := range conns {
		_ = cc.Close()
	}
	return nil
}
