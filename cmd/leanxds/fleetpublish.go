package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/admin/fleet"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Fleet status (package admin/fleet): with --fleet-etcd, serve publishes the
// nodes connected to it in etcd, under a lease, and /debug/fleet lists those
// of every replica.

// fleetOptions are serve's flags of fleet status.
type fleetOptions struct {
	// etcd is the etcd address the status is published under, etcd://h1:2379,h2:2379/prefix;
	// "" publishes none.
	etcd string
	// replicaID names this replica in the fleet.
	replicaID   string
	ttl         time.Duration
	interval    time.Duration
	maxWritesPS int
}

// defaultReplicaID is the host name, which names a pod in Kubernetes.
func defaultReplicaID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "leanxds"
	}
	return h
}

// addFleetFlags adds the flags of fleet status to fs.
func (o *fleetOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.etcd, "fleet-etcd", "", "publish the nodes connected to this replica, and read those of the others, in etcd: `etcd://h1:2379,h2:2379/prefix`\n"+
		"(under prefix/fleet/ and prefix/replicas/, with a lease: see docs/etcd.md); /debug/fleet then lists the whole fleet.\n"+
		"Credentials come from LEANXDS_ETCD_USERNAME and LEANXDS_ETCD_PASSWORD")
	fs.StringVar(&o.replicaID, "replica-id", defaultReplicaID(), "the `name` of this replica in the fleet status: unique among the replicas, without a slash")
	fs.DurationVar(&o.ttl, "fleet-ttl", fleet.DefaultTTL, "lease of the fleet status: how long the nodes of a replica that died stay listed")
	fs.DurationVar(&o.interval, "fleet-interval", fleet.DefaultInterval, "how often the fleet status of the connected nodes is polled, and what changed written")
	fs.IntVar(&o.maxWritesPS, "fleet-max-writes", fleet.DefaultMaxWritesPerSecond, "most fleet status `keys` written to etcd a second; past it, changes wait and coalesce")
}

// check validates the flags.
func (o *fleetOptions) check() error {
	switch {
	case o.etcd == "":
		return nil
	case o.replicaID == "" || strings.Contains(o.replicaID, "/"):
		return usageErrorf("serve: --replica-id %q: want a name without a slash", o.replicaID)
	case o.ttl <= 0 || o.interval <= 0 || o.maxWritesPS <= 0:
		return usageErrorf("serve: --fleet-ttl, --fleet-interval and --fleet-max-writes must be positive")
	case o.ttl < 2*o.interval:
		return usageErrorf("serve: --fleet-ttl %s must be at least twice --fleet-interval %s", o.ttl, o.interval)
	}
	if _, err := source.ParseEtcdAddress(o.etcd); err != nil {
		return usageErrorf("serve: --fleet-etcd: %v", err)
	}
	return nil
}

// fleetStatus is serve's fleet status: the etcd client, the publisher of this
// replica's nodes and the reader of the fleet's.
type fleetStatus struct {
	cli       *clientv3.Client
	prefix    string
	publisher *fleet.Publisher
	reader    *fleet.Reader
}

// newFleetStatus connects to the etcd of --fleet-etcd, with the credentials
// of LEANXDS_ETCD_USERNAME and LEANXDS_ETCD_PASSWORD; nil without it. The
// client connects lazily: an unreachable etcd delays the fleet status, never
// serving.
func newFleetStatus(o *fleetOptions, st *store.Store, xds *stream.Server, addr string, log *slog.Logger) (*fleetStatus, error) {
	if o.etcd == "" {
		return nil, nil
	}
	a, err := source.ParseEtcdAddress(o.etcd)
	if err != nil {
		return nil, usageErrorf("serve: --fleet-etcd: %v", err)
	}
	var copts source.EtcdClientOptions
	copts.Username, copts.Password = source.EtcdCredentialsFromEnv(os.Getenv)
	cfg, err := source.EtcdConfig(a, copts)
	if err != nil {
		return nil, fmt.Errorf("--fleet-etcd: %w", err)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--fleet-etcd: %w", err)
	}
	prefix := a.Prefix
	p, err := fleet.NewPublisher(cli, prefix, o.replicaID, xds, fleet.Options{
		Store: st, TTL: o.ttl, Interval: o.interval, MaxWritesPerSecond: o.maxWritesPS,
		Addr: addr, Version: buildVersion(), Logger: log,
	})
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	return &fleetStatus{cli: cli, prefix: prefix, publisher: p, reader: fleet.NewReader(cli, prefix)}, nil
}

// start publishes until the returned stop is called, which revokes the lease:
// the replica's nodes leave the fleet status at once.
func (f *fleetStatus) start(ctx context.Context) (stop func()) {
	if f == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.publisher.Run(ctx) // it logs its own errors
	}()
	return func() {
		cancel()
		<-done
		_ = f.cli.Close()
	}
}

// buildVersion is the version of the leanxds module built in, or "devel".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
