// Command benchrun runs the load benchmark matrix of leanxds against
// go-control-plane and the raw gRPC floor, with the same generator and workload,
// and writes bench/RESULTS.md and its plots. From bench/, the benchmark's own
// module (or `bash bench/run.sh` from anywhere):
//
//	go run ./cmd/benchrun                 # the full matrix (long)
//	go run ./cmd/benchrun -scale 0.05     # a quick run at 5% of each N
//
// It builds the servers and the generator (the go-control-plane peer from its own
// module under bench/peer), then for each N runs leanxds, go-control-plane and the
// floor, one at a time, each in its own process, and the generator in others.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leanxds/leanxds/bench/load"
	"github.com/leanxds/leanxds/bench/workload"
)

// server is one of the compared servers.
type server struct {
	label string
	// args returns the command line of the server listening on addr and ctl.
	args  func(bin, addr, ctl string) []string
	floor bool
	// maxN is the largest N run for this server (0: all).
	maxN int
}

func main() {
	ns := flag.String("n", "1000,3000,10000,19000,50000,100000", "client counts N to run")
	scale := flag.Float64("scale", 1, "multiply every N by this (e.g. 0.05 for a quick run)")
	oneConnMax := flag.Int("one-conn-max", 19000, "largest N run with one connection per client; above, streams are multiplexed")
	muxConns := flag.Int("mux-conns", 10000, "connections for multiplexed runs")
	peerMaxN := flag.Int("peer-max-n", 10000, "largest N run for go-control-plane (0: all); its runs grow too long beyond")
	servers := flag.String("servers", "leanxds,go-control-plane,floor", "servers to run (also: go-control-plane-linear; leanxds-2rev, leanxds serving two revisions, half the nodes each)")
	rounds := flag.Int("rounds", 3, "times each change is repeated")
	roundsLarge := flag.Int("rounds-large", 1, "times each change is repeated at N ≥ 10,000 (each round already gives N samples)")
	out := flag.String("out", ".", "directory for RESULTS.md, plots and results/*.json")
	profileN := flag.Int("profile-n", 10000, "capture leanxds CPU and allocs profiles at this N (0: never)")
	runTimeout := flag.Duration("run-timeout", 40*time.Minute, "bound on one server's run at one N")
	delta := flag.Bool("delta", false, "run delta xDS instead of state of the world")
	reportOnly := flag.Bool("report-only", false, "rewrite RESULTS.md and the plots from the results of the last run, running nothing")
	w := workload.Flags(flag.CommandLine)
	flag.Parse()
	if *reportOnly {
		rep, err := loadReport(*out)
		if err != nil {
			fatal(err)
		}
		if err := rep.write(*out); err != nil {
			fatal(err)
		}
		return
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if err := os.MkdirAll(filepath.Join(*out, "results"), 0o755); err != nil {
		fatal(err)
	}
	bin, err := os.MkdirTemp("", "leanxds-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(bin)
	fmt.Fprintln(os.Stderr, "benchrun: building servers and generator in", bin)
	if err := build(ctx, bin); err != nil {
		fatal(err)
	}
	wargs := workload.Args(*w)

	all := map[string]server{
		"leanxds": {label: "leanxds", args: func(bin, addr, ctl string) []string {
			return append([]string{filepath.Join(bin, "xdsserver"), "-addr", addr, "-control", ctl}, wargs...)
		}},
		"go-control-plane": {label: "go-control-plane", maxN: *peerMaxN, args: func(bin, addr, ctl string) []string {
			return append([]string{filepath.Join(bin, "gcpserver"), "-addr", addr, "-control", ctl}, wargs...)
		}},
		"go-control-plane-linear": {label: "go-control-plane-linear", maxN: *peerMaxN, args: func(bin, addr, ctl string) []string {
			return append([]string{filepath.Join(bin, "gcpserver"), "-addr", addr, "-control", ctl, "-eds", "linear"}, wargs...)
		}},
		"leanxds-2rev": {label: "leanxds-2rev", args: func(bin, addr, ctl string) []string {
			return append([]string{filepath.Join(bin, "xdsserver"), "-addr", addr, "-control", ctl, "-two-revisions=50"}, wargs...)
		}},
		"floor": {label: "floor", floor: true, args: func(bin, addr, ctl string) []string {
			return append([]string{filepath.Join(bin, "floor"), "-addr", addr, "-control", ctl}, wargs...)
		}},
	}
	var order []server
	for _, name := range strings.Split(*servers, ",") {
		s, ok := all[name]
		if !ok {
			fatal(fmt.Errorf("unknown server %q", name))
		}
		order = append(order, s)
	}

	rep := &report{Workload: *w, Commit: strings.TrimSpace(cmdOut("git", "rev-parse", "--short", "HEAD")) + dirty(), Command: strings.TrimSpace("bash bench/run.sh " + strings.Join(os.Args[1:], " ")), Started: time.Now()}
	sizes := map[string]int{"endpoint": 300, "cluster": 100_000, "all": 100_000}
	run := 0
	for _, f := range strings.Split(*ns, ",") {
		n0, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fatal(err)
		}
		n := max(1, int(math.Round(float64(n0)**scale)))
		conns := n
		if n0 > *oneConnMax {
			conns = max(1, int(math.Round(float64(*muxConns)**scale)))
		}
		for _, s := range order {
			run++
			if s.maxN > 0 && n0 > s.maxN {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s at N=%d: beyond -peer-max-n=%d", s.label, n, s.maxN))
				continue
			}
			r := *rounds
			if n0 >= 10000 {
				r = *roundsLarge
			}
			res, err := runOne(ctx, bin, s, n, conns, run, r, *delta, sizes, *out, n0 == *profileN && s.label == "leanxds", *runTimeout)
			if err != nil {
				fmt.Fprintf(os.Stderr, "benchrun: %s at N=%d: %v\n", s.label, n, err)
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s at N=%d: %v", s.label, n, err))
				if ctx.Err() != nil {
					break
				}
				continue
			}
			rep.Results = append(rep.Results, res)
			if s.label == "leanxds" {
				for k, c := range res.Changes {
					if c.Bytes > 0 {
						sizes[k] = int(c.Bytes) // the floor broadcasts what leanxds sent
					}
				}
			}
			if err := rep.write(*out); err != nil { // after every run: a partial matrix is kept
				fatal(err)
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	rep.Finished = time.Now()
	if err := rep.write(*out); err != nil {
		fatal(err)
	}
	fmt.Fprintln(os.Stderr, "benchrun: wrote", filepath.Join(*out, "RESULTS.md"))
}

func build(ctx context.Context, bin string) error {
	cmds := [][]string{
		{"go", "build", "-o", bin, "./cmd/xdsserver", "./cmd/floor", "./cmd/xdsload"},
		{"go", "build", "-C", "peer", "-o", filepath.Join(bin, "gcpserver"), "."},
	}
	for _, c := range cmds {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(c, " "), err)
		}
	}
	return nil
}

// runOne runs one server at one N: the server in one process, the generator in
// others; both are bounded in time and stopped at the end.
func runOne(ctx context.Context, bin string, s server, n, conns, run, rounds int, delta bool, sizes map[string]int, out string, profile bool, timeout time.Duration) (*load.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := 18000 + 10*(run%400)
	addr, ctl := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
	args := s.args(bin, addr, ctl)
	args = append(args, "-timeout", (timeout + time.Minute).String())
	var profDir string
	if profile {
		profDir = filepath.Join(out, "profiles")
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "-cpuprofile", filepath.Join(profDir, fmt.Sprintf("leanxds-%d.cpu.pprof", n)),
			"-memprofile", filepath.Join(profDir, fmt.Sprintf("leanxds-%d.allocs.pprof", n)))
	}
	srv := exec.Command(args[0], args[1:]...)
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM) // lets a profiled server write its profiles
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	}()

	jsonPath := filepath.Join(out, "results", fmt.Sprintf("%s-%d.json", s.label, n))
	largs := []string{
		"-label", s.label, "-server", addr, "-control", "http://" + ctl,
		"-clients", strconv.Itoa(n), "-conns", strconv.Itoa(conns), "-rounds", strconv.Itoa(rounds),
		"-source-base", fmt.Sprintf("127.0.%d.", 1+run%250), "-timeout", timeout.String(), "-json", jsonPath,
	}
	if delta {
		largs = append(largs, "-delta")
	}
	if s.floor {
		largs = append(largs, "-floor", fmt.Sprintf("-floor-sizes=endpoint=%d,cluster=%d,all=%d", sizes["endpoint"], sizes["cluster"], sizes["all"]))
	}
	_ = os.Remove(jsonPath) // never read a result of an earlier run
	gen := exec.CommandContext(ctx, filepath.Join(bin, "xdsload"), largs...)
	gen.Stdout, gen.Stderr = os.Stderr, os.Stderr
	fmt.Fprintf(os.Stderr, "benchrun: %s N=%d conns=%d\n", s.label, n, conns)
	genErr := gen.Run()
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, errors.Join(genErr, err)
	}
	var res load.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}
