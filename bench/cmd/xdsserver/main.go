// Command xdsserver is the leanxds server the load benchmarks measure: it loads
// the benchmark workload into a store, serves it with stream.New over gRPC, and
// exposes the control API of bench/control (and net/http/pprof) on a second
// loopback port. It exits by itself after -timeout.
//
//	xdsserver -addr 127.0.0.1:18000 -control 127.0.0.1:18001
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	runtimepprof "runtime/pprof"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/leanserver"
	"github.com/leanxds/leanxds/bench/workload"
	"github.com/leanxds/leanxds/stream"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "xDS gRPC listen address (loopback)")
	ctl := flag.String("control", "127.0.0.1:18001", "control API listen address (loopback)")
	timeout := flag.Duration("timeout", 2*time.Hour, "exit after this long whatever happens")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write an allocs profile to this file on exit")
	twoRevisions := flag.Float64("two-revisions", 0, "when above 0, serve two revisions at once: this percentage of the nodes the workload with every cluster changed, the others the workload as it was (leanserver.NewTwoRevisions)")
	w := workload.Flags(flag.CommandLine)
	flag.Parse()
	if err := run(*addr, *ctl, *timeout, *cpuProfile, *memProfile, *twoRevisions, w.Resources()); err != nil {
		fmt.Fprintln(os.Stderr, "xdsserver:", err)
		os.Exit(1)
	}
}

func run(addr, ctl string, timeout time.Duration, cpuProfile, memProfile string, twoRevisions float64, res map[string][]proto.Message) error {
	if _, err := control.RaiseOpenFiles(); err != nil {
		return err
	}
	var (
		srv    *leanserver.Server
		router stream.Router
		err    error
	)
	if twoRevisions > 0 {
		srv, router, err = leanserver.NewTwoRevisions(res, twoRevisions)
	} else {
		srv, err = leanserver.New(res)
	}
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := runtimepprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { runtimepprof.StopCPUProfile(); f.Close() }()
	}
	if memProfile != "" {
		runtime.MemProfileRate = 64 << 10 // sample an allocation every 64 KiB, more than the default
		defer func() {
			if f, err := os.Create(memProfile); err == nil {
				_ = runtimepprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}

	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := grpc.NewServer(stream.ServerOption(), control.ServerKeepalive())
	stream.New(srv.Store(), stream.Options{Router: router, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}).Register(g)
	go func() { _ = g.Serve(lis) }()

	mux := http.NewServeMux()
	control.Handler(mux, srv)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	err = control.ServeUntil("xdsserver", ctl, mux, timeout)
	g.Stop()
	return err
}
