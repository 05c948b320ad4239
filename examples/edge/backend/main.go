// Command backend is an HTTP backend of the Envoy example: it answers every
// request with its name, so that requests sent through Envoy show which
// endpoint served them. Start two, on the ports of the cluster web
// (examples/edge/endpoints.yaml):
//
//	go run ./examples/edge/backend -listen 127.0.0.1:8081
//	go run ./examples/edge/backend -listen 127.0.0.1:8082
//
// See examples/edge/README.md.
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
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "the address to serve on")
	name := flag.String("name", "", "the name the answers carry (default: the address)")
	flag.Parse()
	if *name == "" {
		*name = *listen
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, *name)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	slog.Info("backend listening", "addr", lis.Addr().String(), "name", *name)
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
