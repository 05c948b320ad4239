// Command client is the client of the proxyless gRPC example: it dials
// xds:///greeter through grpc-go's xDS resolver, which asks leanxds for the
// listener, routes, cluster and endpoints of "greeter", and prints how its
// calls spread over the backends, once a second:
//
//	GRPC_XDS_BOOTSTRAP=examples/grpc/bootstrap.json go run ./examples/grpc/client
//
// See examples/grpc/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers

	"github.com/leanxds/leanxds/examples/grpc/greeter"
)

func main() {
	target := flag.String("target", "xds:///greeter", "the target to dial")
	rate := flag.Int("rate", 100, "calls a second")
	flag.Parse()
	if os.Getenv("GRPC_XDS_BOOTSTRAP") == "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		fmt.Fprintln(os.Stderr, "the xDS resolver reads its bootstrap from $GRPC_XDS_BOOTSTRAP: run\n"+
			"  GRPC_XDS_BOOTSTRAP=examples/grpc/bootstrap.json go run ./examples/grpc/client")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cc, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer cc.Close()
	for ctx.Err() == nil {
		// A second's calls, then how they spread.
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		tally, err := greeter.Spread(callCtx, cc, *rate, time.Second/time.Duration(max(*rate, 1)))
		cancel()
		switch {
		case ctx.Err() != nil:
		case err != nil:
			fmt.Printf("%s  error: %v\n", tally, err)
			time.Sleep(time.Second)
		default:
			fmt.Println(tally)
		}
	}
}
