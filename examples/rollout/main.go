// Command rollout is a program of its own that serves a config directory
// with leanxds and stages every change of it: a change reaches 10% of the
// nodes first (by a stable hash of their ids), then, once every one of them
// ACKed it, every node. A NACK from a node of the 10% rolls it back at once,
// and the nodes outside the 10% never see it. When the window ends first,
// the program decides: it rolls the change back, or, with
// -on-timeout=promote, promotes it to the next stage.
//
//	go run ./examples/rollout -config examples/edge
//	# edit a file of examples/edge, then stage the change:
//	kill -HUP $(pgrep -f examples/rollout)
//
// Point Envoys at 127.0.0.1:18000 (examples/edge/envoy.yaml) and watch the
// log: each stage, each decision, and the NACKs that caused a rollback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// config is what the flags set.
type config struct {
	dir     string
	xdsAddr string
	// stages are the plan's stages ("10%,100%").
	stages string
	// window is how long the nodes of a stage have to ACK.
	window time.Duration
	// promoteOnTimeout promotes a change whose window ended; otherwise it is
	// rolled back.
	promoteOnTimeout bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.dir, "config", "examples/edge", "the config directory to serve")
	flag.StringVar(&cfg.xdsAddr, "xds", "127.0.0.1:18000", "the xDS address")
	flag.StringVar(&cfg.stages, "stages", "10%,100%", "the stages of a change")
	flag.DurationVar(&cfg.window, "window", 30*time.Second, "how long the nodes of a stage have to ACK")
	onTimeout := flag.String("on-timeout", "rollback", "what to do when a window ends first: rollback or promote")
	flag.Parse()
	cfg.promoteOnTimeout = *onTimeout == "promote"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{})
	go func() {
		for range hup {
			reload <- struct{}{}
		}
	}()
	err := run(ctx, cfg, reload, func(xds net.Addr) {
		slog.Info("serving; send SIGHUP to stage the directory's changes", "config", cfg.dir, "xds", xds.String())
	}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves cfg.dir on cfg.xdsAddr until ctx ends, calling ready once it
// listens. Each value on reload stages the directory's content as it is
// then; staged, if not nil, is given how each staged change ended.
func run(ctx context.Context, cfg config, reload <-chan struct{}, ready func(xds net.Addr), staged func(rollout.Status)) error {
	stages, err := rollout.ParseStages(cfg.stages)
	if err != nil {
		return err
	}
	plan := rollout.Plan{Stages: stages, Window: cfg.window}

	st := store.New()
	dir := source.NewDir(cfg.dir, st, source.DirOptions{})
	if _, err := dir.Load(ctx); err != nil {
		return err
	}

	// The Manager is the streams' Router: it decides which nodes are served
	// a change under rollout. Attach lets it wake them and count their ACKs.
	m := rollout.New(st, rollout.Options{})
	srv := stream.New(st, stream.Options{Router: m})
	m.Attach(srv)
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis, err := net.Listen("tcp", cfg.xdsAddr)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	go func() { errs <- g.Serve(srv.Listener(lis)) }()
	go func() { errs <- m.Run(ctx) }()
	ready(lis.Addr())

	for {
		select {
		case <-ctx.Done():
			srv.Shutdown()
			g.Stop()
			return nil
		case err := <-errs:
			srv.Shutdown()
			g.Stop()
			if errors.Is(err, grpc.ErrServerStopped) {
				err = nil
			}
			return err
		case <-reload:
			status, ok := stage(ctx, m, dir, plan, cfg.promoteOnTimeout)
			if ok && staged != nil {
				staged(status)
			}
		}
	}
}

// stage rolls the directory's content out by plan and waits for the
// rollout to end; false when there was nothing to roll out.
func stage(ctx context.Context, m *rollout.Manager, dir *source.Dir, plan rollout.Plan, promoteOnTimeout bool) (rollout.Status, bool) {
	r, err := m.Stage(ctx, plan, "reload of the config directory", func() (store.Result, error) {
		return dir.Load(ctx) // the commit: every bad file is refused before anything is served
	})
	if err != nil {
		slog.Error("the change was not staged", "err", err)
		return rollout.Status{}, false
	}
	if r == nil {
		slog.Info("the directory did not change")
		return rollout.Status{}, false
	}
	for {
		status, err := r.Wait(ctx) // promoted, rolled back, held or superseded
		if err != nil {
			return status, true
		}
		if status.Phase != rollout.Held {
			slog.Info("rollout ended", "id", status.ID, "phase", status.Phase, "revision", status.Target)
			return status, true
		}
		// The window ended before every node of the stage ACKed: the
		// program decides.
		pending := status.Applied.Pending
		if promoteOnTimeout {
			slog.Warn("window ended: promoting", "id", status.ID, "stage", status.Stage, "pending", pending)
			err = m.Promote(fmt.Sprintf("%d nodes pending at the end of the window", pending))
		} else {
			slog.Warn("window ended: rolling back", "id", status.ID, "stage", status.Stage, "pending", pending)
			err = m.Abort(fmt.Sprintf("%d nodes pending at the end of the window", pending))
		}
		if err != nil { // superseded meanwhile
			return r.Status(), true
		}
	}
}
