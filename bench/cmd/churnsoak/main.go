// Command churnsoak runs the churn soak of bench/churn for as long as asked and
// prints its result as JSON; it exits 1 if the server did not come back to its
// baseline within churn.DefaultMargins.
//
//	go run ./cmd/churnsoak -duration 10m            # in bench/
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/leanxds/leanxds/bench/churn"
	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/workload"
)

func main() {
	var cfg churn.Config
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long waves of clients keep coming")
	flag.IntVar(&cfg.Clients, "clients", 200, "well-behaved clients a wave, one connection each")
	flag.IntVar(&cfg.Silent, "silent", 0, "streams a wave that send no request, on one connection (0: twice -max-streams-per-conn; -1: none)")
	flag.IntVar(&cfg.Stalled, "stalled", 5, "clients a wave that never read")
	flag.DurationVar(&cfg.ChangeEvery, "change-every", time.Second, "how often the config changes")
	flag.DurationVar(&cfg.FirstRequestTimeout, "first-request-timeout", time.Second, "the server's first-request timeout")
	flag.DurationVar(&cfg.SendTimeout, "send-timeout", time.Second, "the server's send timeout")
	flag.IntVar(&cfg.MaxStreamsPerConn, "max-streams-per-conn", 50, "the server's streams per connection")
	w := workload.Flags(flag.CommandLine)
	flag.Parse()
	// The workload's flags default to the load benchmark's; the soak's own
	// default is smaller, unless one is given.
	given := false
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "clusters", "endpoints", "listeners", "routes", "vhosts":
			given = true
		}
	})
	if given {
		cfg.Workload = *w
	}
	cfg.Log = os.Stderr
	if _, err := control.RaiseOpenFiles(); err != nil {
		fatal(err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	res, err := churn.Run(ctx, cfg)
	if res != nil {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	if err != nil {
		fatal(err)
	}
	if err := res.Check(churn.DefaultMargins); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "churnsoak:", err)
	os.Exit(1)
}
