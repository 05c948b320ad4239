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

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/admin/fleet"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Fleet status (package admin/fleet): with --source etcd://, or --fleet-etcd,
// serve publishes the nodes connected to it in etcd, under a lease, and
// /debug/fleet lists those of every replica.

// fleetOptions are serve's flags of fleet status.
type fleetOptions struct {
	// etcd is the etcd address the status is published under, etcd://h1:2379,h2:2379/prefix;
	// "" publishes it under --source's, if that is etcd.
	etcd string
	// off turns fleet status off.
	off bool
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
		"(under prefix/nodes/ and prefix/replicas/, with a lease: see docs/etcd.md); /debug/fleet then lists the whole fleet.\n"+
		"Default: --source's address, when it is etcd. --etcd-ca, --etcd-cert, --etcd-key and the credentials apply to it too")
	fs.BoolVar(&o.off, "no-fleet", false, "publish no fleet status, not even with --source etcd://")
	fs.StringVar(&o.replicaID, "replica-id", defaultReplicaID(), "the `name` of this replica in the fleet status: unique among the replicas, without a slash")
	fs.DurationVar(&o.ttl, "fleet-ttl", fleet.DefaultTTL, "lease of the fleet status: how long the nodes of a replica that died stay listed")
	fs.DurationVar(&o.interval, "fleet-interval", fleet.DefaultInterval, "how often the fleet status of the connected nodes is polled, and what changed written")
	fs.IntVar(&o.maxWritesPS, "fleet-max-writes", fleet.DefaultMaxWritesPerSecond, "most fleet status `keys` written to etcd a second; past it, changes wait and coalesce")
}

// check validates the flags; sourceEtcd is whether --source is etcd.
func (o *fleetOptions) check(sourceEtcd bool) error {
	switch {
	case o.off && o.etcd != "":
		return usageErrorf("serve: --no-fleet and --fleet-etcd are exclusive")
	case o.off || (o.etcd == "" && !sourceEtcd):
		return nil
	case o.replicaID == "" || strings.Contains(o.replicaID, "/"):
		return usageErrorf("serve: --replica-id %q: want a name without a slash", o.replicaID)
	case o.ttl <= 0 || o.interval <= 0 || o.maxWritesPS <= 0:
		return usageErrorf("serve: --fleet-ttl, --fleet-interval and --fleet-max-writes must be positive")
	case o.ttl < 2*o.interval:
		return usageErrorf("serve: --fleet-ttl %s must be at least twice --fleet-interval %s", o.ttl, o.interval)
	}
	if o.etcd == "" {
		return nil
	}
	if _, err := source.ParseEtcdAddress(o.etcd); err != nil {
		return usageErrorf("serve: --fleet-etcd: %v", err)
	}
	return nil
}

// fleetStatus is serve's fleet status: the etcd client, the publisher of this
// replica's nodes and the reader of the fleet's.
type fleetStatus struct {
	cli *clientv3.Client
	// ownCli is whether cli is the fleet status's own (--fleet-etcd), closed
	// when it stops, rather than the source's.
	ownCli    bool
	prefix    string
	publisher *fleet.Publisher
	reader    *fleet.Reader
}

// newFleetStatus returns the fleet status of serve: under --fleet-etcd, with a
// client of its own (--etcd-ca, --etcd-cert, --etcd-key and the credentials of
// LEANXDS_ETCD_USERNAME and LEANXDS_ETCD_PASSWORD apply), or else under the
// prefix of --source etcd://, with the source's client sourceCli; nil without
// either, or with --no-fleet. A client connects lazily: an unreachable etcd
// delays the fleet status, never serving.
func newFleetStatus(o *serveOptions, sourceCli *clientv3.Client, st *store.Store, xds *stream.Server,
	rollout func() (*admin.FleetReplicaRollout, map[string]*admin.FleetRollout), log *slog.Logger) (*fleetStatus, error) {
	f := &fleetStatus{}
	switch {
	case o.fleet.off:
		return nil, nil
	case o.fleet.etcd != "":
		a, err := source.ParseEtcdAddress(o.fleet.etcd)
		if err != nil {
			return nil, usageErrorf("serve: --fleet-etcd: %v", err)
		}
		cfg, err := source.EtcdConfig(a, o.etcdClient)
		if err != nil {
			return nil, fmt.Errorf("--fleet-etcd: %w", err)
		}
		if f.cli, err = clientv3.New(cfg); err != nil {
			return nil, fmt.Errorf("--fleet-etcd: %w", err)
		}
		f.ownCli, f.prefix = true, a.Prefix
	case o.etcd != nil && sourceCli != nil:
		f.cli, f.prefix = sourceCli, o.etcd.Prefix
	default:
		return nil, nil
	}
	cli, prefix, addr := f.cli, f.prefix, o.listen
	p, err := fleet.NewPublisher(cli, prefix, o.fleet.replicaID, xds, fleet.Options{
		Store: st, TTL: o.fleet.ttl, Interval: o.fleet.interval, MaxWritesPerSecond: o.fleet.maxWritesPS,
		Addr: addr, Version: buildVersion(), Logger: log, Rollout: rollout,
	})
	if err != nil {
		if f.ownCli {
			_ = cli.Close()
		}
		return nil, err
	}
	f.publisher, f.reader = p, fleet.NewReader(cli, prefix)
	return f, nil
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
		if f.ownCli {
			_ = f.cli.Close()
		}
	}
}

// buildVersion is the version of the leanxds module built in, or "devel".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// localStanding is what the fleet records say of this replica's own rollout
// (serve --rollout with --fleet-etcd): each node of its stage with its
// standing against the target, so that /debug/fleet, on any replica, shows
// it and judges it against the target even when the stage selects it by
// metadata, which the records do not carry. Each replica of such a fleet
// runs its own rollout of its own directory; with the etcd source,
// etcdrollout.Replica.Standing says it instead.
func localStanding(m *rollout.Manager) func() (*admin.FleetReplicaRollout, map[string]*admin.FleetRollout) {
	return func() (*admin.FleetReplicaRollout, map[string]*admin.FleetRollout) {
		st, ok := m.Status()
		if !ok || (st.Phase != rollout.Running && st.Phase != rollout.Held) {
			return nil, nil
		}
		a, ok := m.Applied()
		if !ok {
			return nil, nil
		}
		out := make(map[string]*admin.FleetRollout, len(a.Nodes))
		for _, n := range a.Nodes {
			// Records stay within etcd's request limit.
			out[n.NodeID] = &admin.FleetRollout{ID: st.ID, Stage: st.Stage, State: n.State.String(), Rejection: rollout.BoundRejection(n.Rejection)}
		}
		sum := admin.SumStanding(st.ID, st.Stage, out)
		return sum, out
	}
}
