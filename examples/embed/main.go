// Command embed is a program of its own that serves a config directory with
// leanxds, one call per part: the directory source keeps the store equal to
// the directory, the stream server serves the store over xDS, and the admin
// handler adds the pages, /metrics and CSDS; the health service and server
// reflection answer probes and grpcurl on the xDS port.
//
//	go run ./examples/embed -config examples/edge
//
// Point an Envoy at 127.0.0.1:18000 (examples/edge/envoy.yaml) and read
// http://127.0.0.1:18100/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/admin/dirsource"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

func main() {
	config := flag.String("config", "examples/edge", "the config directory to serve")
	xdsAddr := flag.String("xds", "127.0.0.1:18000", "the xDS address")
	adminAddr := flag.String("admin", "127.0.0.1:18100", "the admin address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *config, *xdsAddr, *adminAddr, func(xds, adm net.Addr) {
		slog.Info("serving", "config", *config, "xds", xds.String(), "admin", adm.String())
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves config on xdsAddr and its admin pages on adminAddr until ctx
// ends, calling ready once both listen.
func run(ctx context.Context, config, xdsAddr, adminAddr string, ready func(xds, admin net.Addr)) error {
	st := store.New()
	dir := source.NewDir(config, st, source.DirOptions{})
	if _, err := dir.Load(ctx); err != nil {
		return err // every bad file, resource and field, by name
	}

	metrics := admin.NewMetrics(st)
	srv := stream.New(st, stream.Options{Hooks: metrics.Hooks()})
	adm := admin.New(admin.Options{
		Store: st, Streams: srv, Metrics: metrics,
		Source: dirsource.Of(dir), Reloader: dirsource.Of(dir),
	})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	adm.RegisterCSDS(g)
	health := admin.NewHealth() // for Kubernetes gRPC probes and grpcurl
	health.Register(g)
	reflection.Register(g)
	health.SetServing(true) // the directory is loaded

	xdsLis, err := net.Listen("tcp", xdsAddr)
	if err != nil {
		return err
	}
	adminLis, err := net.Listen("tcp", adminAddr)
	if err != nil {
		xdsLis.Close()
		return err
	}
	web := &http.Server{Handler: adm}
	errs := make(chan error, 3)
	go func() { errs <- g.Serve(srv.Listener(xdsLis)) }()
	go func() { errs <- web.Serve(adminLis) }()
	go func() {
		// Run reloads the directory as it changes; it returns nil once ctx
		// ends, and an error only if it cannot go on.
		if err := dir.Run(ctx); err != nil || ctx.Err() == nil {
			errs <- fmt.Errorf("config source stopped: %v", err)
		}
	}()
	ready(xdsLis.Addr(), adminLis.Addr())

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errs:
	}
	health.Shutdown() // NOT_SERVING
	srv.Shutdown()    // streams end with Unavailable: clients reconnect elsewhere
	adm.Shutdown()
	g.Stop()
	_ = web.Close()
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
