package failover

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/leanxds/leanxds/bench/leanserver"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/stream"
)

// Config is one failover run.
type Config struct {
	// Clients is N; every DeltaEvery-th client is delta (0: none), the
	// others state of the world.
	Clients, DeltaEvery int
	Workload            xdstest.Workload
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result compares the failover with the first connect of the same clients.
type Result struct {
	Clients, Delta int
	// First and Failover: when the last client was ready (from the start of
	// the phase: the first dial, or A's death), and per-client bytes and
	// resources received (medians, and for SotW and delta apart).
	First, Failover Measure
}

// Measure is one phase over every client.
type Measure struct {
	AllReady                time.Duration
	ReadyP50, ReadyP99      time.Duration
	BytesSotW, BytesDelta   int // median per client
	ResourcesSotW, ResDelta int // median per client
	TotalBytes              int64
}

func (m Measure) String() string {
	return fmt.Sprintf("all ready %v (p50 %v, p99 %v); per client: SotW %d B / %d resources, delta %d B / %d resources; total %d B",
		m.AllReady.Round(time.Millisecond), m.ReadyP50.Round(time.Millisecond), m.ReadyP99.Round(time.Millisecond),
		m.BytesSotW, m.ResourcesSotW, m.BytesDelta, m.ResDelta, m.TotalBytes)
}

// replica is one in-process leanxds server on 127.0.0.1.
type replica struct {
	g    *grpc.Server
	addr string
}

func startReplica(w xdstest.Workload) (*replica, error) {
	srv, err := leanserver.New(w.Resources())
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer(stream.ServerOption())
	stream.New(srv.Store(), stream.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(g)
	go func() { _ = g.Serve(lis) }()
	return &replica{g: g, addr: lis.Addr().String()}, nil
}

// Run connects cfg.Clients to replica A, kills A, and moves them all to B.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	a, err := startReplica(cfg.Workload)
	if err != nil {
		return nil, err
	}
	defer a.g.Stop()
	b, err := startReplica(cfg.Workload)
	if err != nil {
		return nil, err
	}
	defer b.g.Stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	clients := make([]*Client, cfg.Clients)
	res := &Result{Clients: cfg.Clients}
	for i := range clients {
		clients[i] = &Client{ID: fmt.Sprintf("envoy-%05d", i), Delta: cfg.DeltaEvery > 0 && i%cfg.DeltaEvery == cfg.DeltaEvery-1}
		if clients[i].Delta {
			res.Delta++
		}
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	phase := func(addr string, resume bool) (Measure, error) {
		start := time.Now()
		phases := make([]Phase, len(clients))
		errs := make([]error, len(clients))
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() { phases[i], errs[i] = c.Connect(ctx, addr, resume) })
		}
		wg.Wait()
		all := time.Since(start)
		for i, err := range errs {
			if err != nil {
				return Measure{}, fmt.Errorf("%s: %w", clients[i].ID, err)
			}
		}
		return measure(clients, phases, all), nil
	}
	if res.First, err = phase(a.addr, false); err != nil {
		return nil, fmt.Errorf("first connect: %w", err)
	}
	fmt.Fprintf(cfg.Log, "first connect of %d clients to A: %v\n", cfg.Clients, res.First)
	a.g.Stop() // listener and every stream closed at once
	if res.Failover, err = phase(b.addr, true); err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	fmt.Fprintf(cfg.Log, "failover of %d clients to B: %v\n", cfg.Clients, res.Failover)
	return res, nil
}

func measure(clients []*Client, phases []Phase, all time.Duration) Measure {
	m := Measure{AllReady: all}
	var ready []time.Duration
	var bs, bd, rs, rd []int
	for i, p := range phases {
		ready = append(ready, p.Ready)
		m.TotalBytes += int64(p.Bytes)
		if clients[i].Delta {
			bd, rd = append(bd, p.Bytes), append(rd, p.Resources)
		} else {
			bs, rs = append(bs, p.Bytes), append(rs, p.Resources)
		}
	}
	slices.Sort(ready)
	q := func(p float64) time.Duration { return ready[min(len(ready)-1, int(p*float64(len(ready))))] }
	m.ReadyP50, m.ReadyP99 = q(0.5), q(0.99)
	m.BytesSotW, m.BytesDelta, m.ResourcesSotW, m.ResDelta = median(bs), median(bd), median(rs), median(rd)
	return m
}

func median(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}
