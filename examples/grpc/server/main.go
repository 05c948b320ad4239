// Command server is a backend of the proxyless gRPC example: a greeter whose
// answers name it. Start two, on the ports of examples/grpc/cluster.yaml:
//
//	go run ./examples/grpc/server -listen 127.0.0.1:50051
//	go run ./examples/grpc/server -listen 127.0.0.1:50052
//
// See examples/grpc/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	"github.com/leanxds/leanxds/examples/grpc/greeter"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:50051", "the address to serve on")
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
	g := grpc.NewServer()
	greeter.Register(g, *name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		g.GracefulStop()
	}()
	slog.Info("greeter listening", "addr", lis.Addr().String(), "name", *name)
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
