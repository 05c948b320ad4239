package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/protocol"
)

// Config is one load run against one server.
type Config struct {
	// Label names the server in the result ("leanxds", "go-control-plane", "floor").
	Label string
	// Server is the xDS address; Control the server's control API URL.
	Server, Control string
	// Clients is N, the number of simulated clients (ADS streams), over Conns
	// connections (0: one each) spread over Procs worker processes (0: as many as
	// the open-files limit needs; 1: in this process).
	Clients, Conns, Procs int
	// SourceIPs is how many loopback source addresses connections are spread
	// over, from SourceBase (such as "127.0.1.") followed by 1, 2, ...
	SourceIPs  int
	SourceBase string
	// Delta runs incremental xDS instead of state of the world.
	Delta bool
	// Rounds repeats each change.
	Rounds int
	// Floor says the server is the raw floor: a change is its broadcast of one
	// message (an EDS message of FloorSizes[kind] bytes for a change of
	// endpoints, its CDS configuration again for a change of clusters).
	Floor      bool
	FloorSizes map[string]int
	// Scenarios are the changes to time, in order (control.KindEndpoint, ...).
	Scenarios []string
	// ConnectTimeout and ChangeTimeout bound the phases; 0 picks a bound that
	// grows with Clients.
	ConnectTimeout, ChangeTimeout time.Duration
	// Exe and WorkerArgs start a worker process (the generator's own binary).
	Exe        string
	WorkerArgs []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result is what one run measured.
type Result struct {
	Label   string `json:"label"`
	Clients int    `json:"clients"`
	Conns   int    `json:"conns"`
	Procs   int    `json:"procs"`
	Variant string `json:"variant"`

	// Connect: per-client time to a fully ACKed configuration (ms); AllReadyMs
	// is when the last client got there.
	Connect    Summary `json:"connect_ms"`
	AllReadyMs float64 `json:"all_ready_ms"`
	Ready      int     `json:"ready"`
	Failed     int     `json:"failed"`
	// ACKRate is the ACKs sent per second during the connect phase, one sample a
	// second; ACKRateMean is all ACKs over the phase's length.
	ACKRate     Summary `json:"ack_rate"`
	ACKRateMean float64 `json:"ack_rate_mean"`

	// Memory before clients connected and once all held their configuration.
	Before control.Stats `json:"before"`
	After  control.Stats `json:"after"`
	// RSSPerStream and HeapPerStream are (after − before) / N, bytes.
	RSSPerStream  float64 `json:"rss_per_stream"`
	HeapPerStream float64 `json:"heap_per_stream"`

	// Changes holds one entry per scenario.
	Changes map[string]*Change `json:"changes"`

	Check  CheckReport `json:"check"`
	Expect control.Counts
	// OK: every client ended fully ACKed with the expected resource counts.
	OK     bool     `json:"ok"`
	Errors []string `json:"errors,omitempty"`
}

// Change is what one scenario measured over its rounds.
type Change struct {
	// Latency is commit start → change received, per client and round (ms).
	Latency Summary `json:"latency_ms"`
	// RoundP99 is the p99 latency of each round (ms).
	RoundP99 []float64 `json:"round_p99_ms"`
	// Commit is the duration of the commit call itself (ms), per round.
	Commit Summary `json:"commit_ms"`
	// CPU is the server's CPU seconds per push (the whole fan-out), per round.
	CPU Summary `json:"cpu_seconds"`
	// Bytes is the median response bytes a client received for the change.
	Bytes  int64 `json:"bytes"`
	Missed int   `json:"missed"`
}

// Summary is min/p50/p99/max of a sample.
type Summary struct {
	N   int     `json:"n"`
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Summarize sorts xs and summarises it.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	slices.Sort(xs)
	q := func(p float64) float64 { return xs[min(len(xs)-1, int(math.Ceil(p*float64(len(xs))))-1)] }
	return Summary{N: len(xs), Min: xs[0], P50: q(0.50), P99: q(0.99), Max: xs[len(xs)-1]}
}

// procsFor is how many worker processes n connections need: each process may
// hold at most maxConnsPerProc of them under the open-files limit.
const maxConnsPerProc = 9_000

func (cfg *Config) defaults() {
	if cfg.Conns <= 0 || cfg.Conns > cfg.Clients {
		cfg.Conns = cfg.Clients
	}
	if cfg.Procs <= 0 {
		cfg.Procs = max(1, (cfg.Conns+maxConnsPerProc-1)/maxConnsPerProc)
	}
	if cfg.SourceIPs <= 0 {
		cfg.SourceIPs = max(1, (cfg.Conns+9_999)/10_000)
	}
	if cfg.SourceBase == "" {
		cfg.SourceBase = "127.0.0."
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Scenarios == nil {
		cfg.Scenarios = []string{control.KindEndpoint, control.KindCluster, control.KindAll}
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 2*time.Minute + time.Duration(cfg.Clients)*10*time.Millisecond
	}
	if cfg.ChangeTimeout <= 0 {
		cfg.ChangeTimeout = time.Minute + time.Duration(cfg.Clients)*5*time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
}

// Run measures one server under cfg's load.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	res := &Result{Label: cfg.Label, Clients: cfg.Clients, Conns: cfg.Conns, Procs: cfg.Procs, Variant: "sotw", Changes: map[string]*Change{}}
	if cfg.Delta {
		res.Variant = "delta"
	}
	ctl := control.NewClient(cfg.Control)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := ctl.Wait(wctx)
	cancel()
	if err != nil {
		return nil, err
	}
	if res.Before, err = ctl.Stats(ctx, true); err != nil {
		return nil, err
	}

	workers, err := startWorkers(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Add(1)
			go func() { defer wg.Done(); w.Close() }()
		}
		wg.Wait()
	}()

	// Connect: every client from the same start.
	fmt.Fprintf(cfg.Log, "%s: connecting %d clients over %d connections in %d process(es)\n", cfg.Label, cfg.Clients, cfg.Conns, cfg.Procs)
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	reps, err := each(cctx, workers, func(ctx context.Context, w Worker) (ConnectReport, error) { return w.Connect(ctx, start) })
	cancel()
	if err != nil {
		return nil, err
	}
	var ready []float64
	var perSecond []int64
	firstCluster := ""
	for _, r := range reps {
		res.Ready += r.Ready
		res.Failed += r.Failed
		res.Errors = append(res.Errors, r.Errors...)
		for _, ns := range r.ReadyNanos {
			if ns >= 0 {
				ready = append(ready, float64(ns)/1e6)
			}
		}
		for s, n := range r.ACKsPerSecond {
			if s >= len(perSecond) {
				perSecond = append(perSecond, make([]int64, s+1-len(perSecond))...)
			}
			perSecond[s] += n
		}
		if r.FirstCluster != "" && (firstCluster == "" || r.FirstCluster < firstCluster) {
			firstCluster = r.FirstCluster
		}
	}
	res.Connect = Summarize(ready)
	res.AllReadyMs = res.Connect.Max
	res.ACKRate, res.ACKRateMean = ackRates(perSecond, res.AllReadyMs)
	fmt.Fprintf(cfg.Log, "%s: %d/%d clients fully ACKed in %.0f ms (%d failed)\n", cfg.Label, res.Ready, cfg.Clients, res.AllReadyMs, res.Failed)
	if res.Ready < cfg.Clients {
		res.Errors = append(res.Errors, fmt.Sprintf("only %d of %d clients reached a fully ACKed configuration within %v", res.Ready, cfg.Clients, cfg.ConnectTimeout))
		if res.Ready == 0 {
			return res, nil
		}
	}
	settle(ctx, ctl)
	if res.After, err = ctl.Stats(ctx, true); err != nil {
		return nil, err
	}
	res.RSSPerStream = float64(res.After.RSSBytes-res.Before.RSSBytes) / float64(cfg.Clients)
	res.HeapPerStream = float64(res.After.HeapBytes-res.Before.HeapBytes) / float64(cfg.Clients)

	// Changes.
	if firstCluster == "" {
		return res, errors.New("no client was sent a cluster")
	}
	seq := int64(0)
	lat := map[string][]float64{}
	commits := map[string][]float64{}
	cpus := map[string][]float64{}
	bytes := map[string][]int64{}
	for round := range cfg.Rounds {
		for _, kind := range cfg.Scenarios {
			seq++
			p := Probe{Seq: seq, Type: protocol.TypeEndpoint, Name: firstCluster}
			switch kind {
			case control.KindCluster:
				p.Name = fmt.Sprintf("bench-added-%04d", seq)
			case control.KindAll:
				p.Type = protocol.TypeCluster
			}
			if cfg.Floor && kind == control.KindCluster {
				// The floor broadcasts its CDS configuration again: it adds nothing.
				p.Type, p.Name = protocol.TypeCluster, firstCluster
			}
			if _, err := each(ctx, workers, func(ctx context.Context, w Worker) (struct{}, error) { return struct{}{}, w.Arm(ctx, p) }); err != nil {
				return nil, err
			}
			before, err := ctl.Stats(ctx, false)
			if err != nil {
				return nil, err
			}
			cm, err := ctl.Commit(ctx, kind, p.Name, int(seq), cfg.FloorSizes[kind])
			if err != nil {
				return nil, err
			}
			xctx, cancel := context.WithTimeout(ctx, cfg.ChangeTimeout)
			creps, err := each(xctx, workers, func(ctx context.Context, w Worker) (CollectReport, error) {
				return w.Collect(ctx, seq, cm.StartUnixNano)
			})
			cancel()
			if err != nil {
				return nil, err
			}
			ch := res.Changes[kind]
			if ch == nil {
				ch = &Change{}
				res.Changes[kind] = ch
			}
			var got []float64
			for _, r := range creps {
				ch.Missed += r.Missed
				for _, ns := range r.LatencyNanos {
					got = append(got, float64(ns)/1e6)
				}
				bytes[kind] = append(bytes[kind], r.Bytes...)
			}
			lat[kind] = append(lat[kind], got...)
			ch.RoundP99 = append(ch.RoundP99, Summarize(got).P99)
			settle(ctx, ctl)
			after, err := ctl.Stats(ctx, false)
			if err != nil {
				return nil, err
			}
			commits[kind] = append(commits[kind], float64(cm.DurationNanos)/1e6)
			cpus[kind] = append(cpus[kind], after.CPUSeconds-before.CPUSeconds)
			fmt.Fprintf(cfg.Log, "%s: round %d %s: p99 %.1f ms, %d missed, commit %.2f ms, %.3f CPU s\n",
				cfg.Label, round, kind, ch.RoundP99[len(ch.RoundP99)-1], ch.Missed, float64(cm.DurationNanos)/1e6, after.CPUSeconds-before.CPUSeconds)
		}
	}
	for kind, ch := range res.Changes {
		ch.Latency = Summarize(lat[kind])
		ch.Commit = Summarize(commits[kind])
		ch.CPU = Summarize(cpus[kind])
		if b := bytes[kind]; len(b) > 0 {
			slices.Sort(b)
			ch.Bytes = b[len(b)/2]
		}
	}

	// Final check: every client fully ACKed, holding what the server holds.
	final, err := ctl.Stats(ctx, false)
	if err != nil {
		return nil, err
	}
	res.Expect = final.Counts
	checks, err := each(ctx, workers, func(ctx context.Context, w Worker) (CheckReport, error) { return w.Check(ctx) })
	if err != nil {
		return nil, err
	}
	res.Check = mergeChecks(checks)
	res.OK = okCheck(res.Check, res.Expect, cfg.Clients)
	return res, nil
}

// okCheck reports whether every client holds a fully ACKed configuration with
// the server's resource counts.
func okCheck(c CheckReport, e control.Counts, n int) bool {
	all := func(r [2]int, want int) bool { return r[0] == want && r[1] == want }
	return c.Clients == n && c.Ready == n && c.Incomplete == 0 &&
		all(c.Clusters, e.Clusters) && all(c.Assignments, e.Assignments) &&
		all(c.Listeners, e.Listeners) && all(c.Routes, e.Routes)
}

func mergeChecks(cs []CheckReport) CheckReport {
	var out CheckReport
	for i, c := range cs {
		out.Clients += c.Clients
		out.Ready += c.Ready
		out.Incomplete += c.Incomplete
		out.ACKs += c.ACKs
		out.Errors = append(out.Errors, c.Errors...)
		for _, p := range []struct{ dst, src *[2]int }{{&out.Clusters, &c.Clusters}, {&out.Assignments, &c.Assignments}, {&out.Listeners, &c.Listeners}, {&out.Routes, &c.Routes}} {
			if i == 0 || p.src[0] < p.dst[0] {
				p.dst[0] = p.src[0]
			}
			if i == 0 || p.src[1] > p.dst[1] {
				p.dst[1] = p.src[1]
			}
		}
	}
	return out
}

// ackRates summarises the per-second ACK counts of the connect phase.
func ackRates(perSecond []int64, allReadyMs float64) (Summary, float64) {
	last := min(len(perSecond), int(allReadyMs/1000)+1)
	var total int64
	var xs []float64
	for s := range last {
		total += perSecond[s]
		if perSecond[s] > 0 {
			xs = append(xs, float64(perSecond[s]))
		}
	}
	mean := 0.0
	if allReadyMs > 0 {
		mean = float64(total) / (allReadyMs / 1000)
	}
	return Summarize(xs), mean
}

// settle waits until the server's CPU use stops growing: the fan-out and the
// ACKs that follow it are done.
func settle(ctx context.Context, ctl *control.Client) {
	prev, err := ctl.Stats(ctx, false)
	if err != nil {
		return
	}
	for range 60 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		cur, err := ctl.Stats(ctx, false)
		if err != nil {
			return
		}
		if cur.CPUSeconds-prev.CPUSeconds < 0.02 {
			return
		}
		prev = cur
	}
}

func startWorkers(cfg Config) ([]Worker, error) {
	var ips []string
	for i := range cfg.SourceIPs {
		ips = append(ips, fmt.Sprintf("%s%d", cfg.SourceBase, 1+i))
	}
	var workers []Worker
	first := 0
	for p := range cfg.Procs {
		n := cfg.Clients/cfg.Procs + btoi(p < cfg.Clients%cfg.Procs)
		c := cfg.Conns/cfg.Procs + btoi(p < cfg.Conns%cfg.Procs)
		wc := WorkerConfig{Server: cfg.Server, FirstID: first, Clients: n, Conns: c, LocalIPs: ips, Delta: cfg.Delta}
		first += n
		if cfg.Procs == 1 {
			return []Worker{NewWorker(wc)}, nil
		}
		r, err := startRemote(cfg.Exe, cfg.WorkerArgs, wc)
		if err != nil {
			for _, w := range workers {
				w.Close()
			}
			return nil, err
		}
		workers = append(workers, r)
	}
	return workers, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// each runs f on every worker at once and returns their answers in order.
func each[T any](ctx context.Context, ws []Worker, f func(context.Context, Worker) (T, error)) ([]T, error) {
	out := make([]T, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = f(ctx, w)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
