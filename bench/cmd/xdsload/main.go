// Command xdsload is the leanxds load generator: it simulates N Envoy clients on
// ADS (state of the world, or delta with -delta) against any xDS server that
// exposes the bench control API, and measures time to a fully ACKed
// configuration, memory per stream, fan-out latency of three kinds of change,
// server CPU per push and ACK throughput. It writes its result as JSON.
//
//	xdsload -server 127.0.0.1:18000 -control http://127.0.0.1:18001 -clients 10000
//
// Past one process's open-files limit, it re-runs itself as worker processes
// (-procs) and gathers their results; -conns below -clients multiplexes
// several streams on each connection.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/load"
)

func main() {
	var cfg load.Config
	worker := flag.Bool("worker", false, "run as a worker process of another xdsload (internal)")
	flag.StringVar(&cfg.Label, "label", "server", "name of the server in the result")
	flag.StringVar(&cfg.Server, "server", "127.0.0.1:18000", "xDS server address (loopback)")
	flag.StringVar(&cfg.Control, "control", "http://127.0.0.1:18001", "server's control API URL")
	flag.IntVar(&cfg.Clients, "clients", 1000, "simulated clients (ADS streams), N")
	flag.IntVar(&cfg.Conns, "conns", 0, "gRPC connections (0: one per client); fewer multiplexes streams")
	flag.IntVar(&cfg.Procs, "procs", 0, "worker processes (0: as the open-files limit needs; 1: this process)")
	flag.IntVar(&cfg.SourceIPs, "source-ips", 0, "loopback source addresses to spread connections over (0: one per 10,000)")
	flag.StringVar(&cfg.SourceBase, "source-base", "127.0.0.", "prefix of the source addresses (1, 2, ... are appended)")
	flag.BoolVar(&cfg.Delta, "delta", false, "use delta (incremental) xDS")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "times each change is repeated")
	flag.BoolVar(&cfg.Floor, "floor", false, "the server is the raw floor: a change is its broadcast (EDS of -floor-sizes bytes, or its CDS again)")
	sizes := flag.String("floor-sizes", "", "broadcast size per change for the floor: endpoint=N,cluster=N,all=N")
	scenarios := flag.String("changes", "endpoint,cluster,all", "changes to time, in order")
	flag.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 0, "bound on the connect phase (0: grows with -clients)")
	flag.DurationVar(&cfg.ChangeTimeout, "change-timeout", 0, "bound on one change's fan-out (0: grows with -clients)")
	timeout := flag.Duration("timeout", time.Hour, "bound on the whole run")
	out := flag.String("json", "", "write the result here (default stdout)")
	flag.Parse()

	if _, err := control.RaiseOpenFiles(); err != nil {
		fatal(err)
	}
	if *worker {
		if err := load.ServeWorker(os.Stdin, os.Stdout); err != nil {
			fatal(err)
		}
		return
	}
	cfg.FloorSizes = map[string]int{}
	for _, kv := range strings.Split(*sizes, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				fatal(fmt.Errorf("-floor-sizes: %w", err))
			}
			cfg.FloorSizes[k] = n
		}
	}
	cfg.Scenarios = strings.Split(*scenarios, ",")
	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	cfg.Exe, cfg.WorkerArgs = exe, []string{"-worker"}
	cfg.Log = os.Stderr

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		fatal(err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fatal(err)
	}
	if *out == "" {
		os.Stdout.Write(append(b, '\n'))
	} else if err := os.WriteFile(*out, b, 0o644); err != nil {
		fatal(err)
	}
	if !res.OK {
		fmt.Fprintf(os.Stderr, "xdsload: not every client ended fully ACKed: %+v (expected %+v) %v\n", res.Check, res.Expect, res.Errors)
		os.Exit(2)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "xdsload:", err)
	os.Exit(1)
}
