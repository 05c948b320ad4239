package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Defaults of Options.
const (
	// DefaultTTL is the lease of a replica's keys: how long the nodes of a
	// replica that died stay listed.
	DefaultTTL = 10 * time.Second
	// DefaultInterval is how often the streams' status is polled.
	DefaultInterval = time.Second
	// DefaultMaxWritesPerSecond bounds the keys a replica writes a second: a
	// change reaching 10,000 nodes is published within about 10s, while etcd,
	// which also carries the config, keeps most of its capacity.
	DefaultMaxWritesPerSecond = 1000
	// DefaultMaxTxnOps is etcd's default --max-txn-ops.
	DefaultMaxTxnOps = 128
	// DefaultMaxTxnBytes keeps a transaction under etcd's default request
	// limit (--max-request-bytes, 1.5 MiB).
	DefaultMaxTxnBytes = 1 << 20
)

// Streams is what a publisher reads of the xDS streams: a *stream.Server.
type Streams interface {
	// Streams returns the status of every stream that sent its first request,
	// ordered by ID.
	Streams() []stream.StreamStatus
}

// Options configure a Publisher; a zero value takes its default.
type Options struct {
	// Store is the store the streams serve: each type's content version in a
	// node's scope is published beside what the node ACKed, for other
	// replicas to tell whether it holds what they would send (see
	// admin.FleetType.Content). Required.
	Store *store.Store
	// TTL is the lease of the replica's keys (DefaultTTL); etcd rounds it up
	// to whole seconds, and to its minimum lease.
	TTL time.Duration
	// Interval is how often the streams are polled (DefaultInterval).
	Interval time.Duration
	// MaxWritesPerSecond bounds the keys put or deleted a second
	// (DefaultMaxWritesPerSecond).
	MaxWritesPerSecond int
	// MaxTxnOps and MaxTxnBytes bound one transaction (DefaultMaxTxnOps,
	// DefaultMaxTxnBytes).
	MaxTxnOps   int
	MaxTxnBytes int
	// Addr and Version are published in <prefix>/replicas/<id>: the replica's
	// xDS address and the leanxds version it runs.
	Addr, Version string
	// Logger receives the publisher's errors; nil means slog.Default().
	Logger *slog.Logger
	// Rollout, if not nil, is called at each poll: nodes is the standing of
	// the nodes the stage of the rollout running selects, by node id,
	// written into their records (admin.FleetNode.Rollout), and sum is where
	// they stand together (nil when no rollout runs). Once a poll wrote every
	// change, sum is written into the replica's record
	// (admin.FleetReplica.Rollout): its nodes' records then all say it.
	// Package rollout/etcdrollout gives it (Replica.Standing).
	Rollout func() (sum *admin.FleetReplicaRollout, nodes map[string]*admin.FleetRollout)
}

// Stats are what a publisher has written since it started.
type Stats struct {
	// Puts and Deletes count the keys written; Txns the transactions that
	// wrote them.
	Puts, Deletes, Txns uint64
	// Polls counts the polls of the streams; Deferred the changes a poll left
	// to the next because of MaxWritesPerSecond (a change deferred twice
	// counts twice).
	Polls, Deferred uint64
	// Nodes is the number of nodes etcd holds for this replica; Pending the
	// changes the last poll left to the next.
	Nodes, Pending int
	// Errors counts failed writes and lost leases; LastError is the newest.
	Errors    uint64
	LastError string
}

// Publisher publishes the status of the nodes connected to one replica.
type Publisher struct {
	cli     *clientv3.Client
	prefix  string
	id      string
	streams Streams
	opts    Options
	log     *slog.Logger
	started time.Time
	descs   metricDescs

	// written is what etcd holds of this replica's nodes, by node ID; cursor
	// the last node the previous poll wrote (see rotate); rate the write
	// bound; replica the replica's record as written (its Rollout stage
	// changes). Only Run's goroutine uses them.
	written map[string]*admin.FleetNode
	cursor  string
	rate    *rateBound
	replica admin.FleetReplica

	puts, deletes, txns, polls, deferred, errs atomic.Uint64
	nodes, pending                             atomic.Int64
	mu                                         sync.Mutex
	lastError                                  string
}

// NewPublisher returns the publisher of replica id's nodes, read from
// streams, under prefix (etcd-layout: no trailing slash) of cli. The id names
// the replica among the fleet: it must be unique, and hold no slash.
func NewPublisher(cli *clientv3.Client, prefix, id string, streams Streams, o Options) (*Publisher, error) {
	if id == "" || strings.Contains(id, "/") {
		return nil, fmt.Errorf("fleet: replica id %q: want a non-empty name without a slash", id)
	}
	if o.Store == nil {
		return nil, errors.New("fleet: Options.Store is required")
	}
	o.TTL = orDefault(o.TTL, DefaultTTL)
	o.Interval = orDefault(o.Interval, DefaultInterval)
	o.MaxWritesPerSecond = orDefault(o.MaxWritesPerSecond, DefaultMaxWritesPerSecond)
	o.MaxTxnOps = orDefault(o.MaxTxnOps, DefaultMaxTxnOps)
	o.MaxTxnBytes = orDefault(o.MaxTxnBytes, DefaultMaxTxnBytes)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Publisher{cli: cli, prefix: prefix, id: id, streams: streams, opts: o,
		log: o.Logger.With("replica", id), descs: newMetricDescs()}, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Stats returns what the publisher has written so far.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	last := p.lastError
	p.mu.Unlock()
	return Stats{
		Puts: p.puts.Load(), Deletes: p.deletes.Load(), Txns: p.txns.Load(),
		Polls: p.polls.Load(), Deferred: p.deferred.Load(),
		Nodes: int(p.nodes.Load()), Pending: int(p.pending.Load()),
		Errors: p.errs.Load(), LastError: last,
	}
}

// Run publishes until ctx ends, then revokes the lease, which deletes the
// replica's keys. It takes a new lease, and writes every node again, when
// etcd lost the one it had (etcd was unreachable for longer than the TTL);
// errors are logged and counted in Stats, and retried with backoff.
func (p *Publisher) Run(ctx context.Context) error {
	p.started = time.Now()
	backoff := 100 * time.Millisecond
	for {
		err := p.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.failed(err)
		p.log.Warn("fleet status: publishing again under a new lease", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// errLeaseLost ends a session whose lease etcd no longer keeps.
var errLeaseLost = errors.New("the lease expired")

// session publishes under one lease until ctx ends (it then revokes it) or
// the lease is lost.
func (p *Publisher) session(ctx context.Context) error {
	lease, err := p.cli.Grant(ctx, int64(math.Ceil(p.opts.TTL.Seconds())))
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	alive, err := p.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("keep the lease alive: %w", err)
	}
	defer func() {
		if ctx.Err() != nil {
			// A replica that stops takes its nodes with it at once: they are
			// reconnecting to others.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_, _ = p.cli.Revoke(rctx, lease.ID)
		}
	}()
	p.replica = admin.FleetReplica{Addr: p.opts.Addr, Started: p.started, Version: p.opts.Version}
	rep, err := json.Marshal(p.replica)
	if err != nil {
		return err
	}
	// What this replica published under an earlier lease (a run before a
	// restart, a session whose lease was lost) is replaced whole.
	if _, err := p.cli.Txn(ctx).Then(
		clientv3.OpDelete(p.fleetPrefix(), clientv3.WithPrefix()),
		clientv3.OpPut(source.EtcdReplicasPrefix(p.prefix)+p.id, string(rep), clientv3.WithLease(lease.ID)),
	).Commit(); err != nil {
		return fmt.Errorf("register the replica: %w", err)
	}
	p.written, p.cursor = map[string]*admin.FleetNode{}, ""
	p.nodes.Store(0)
	now := time.Now()
	p.rate = newRateBound(float64(p.opts.MaxWritesPerSecond), float64(p.opts.MaxWritesPerSecond)*max(p.opts.Interval.Seconds(), 1), now)
	tick := time.NewTicker(p.opts.Interval)
	defer tick.Stop()
	for {
		if err := p.poll(ctx, lease.ID, time.Now()); err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return errLeaseLost
			}
			if ctx.Err() != nil {
				return nil
			}
			p.failed(err)
			p.log.Warn("fleet status: write failed; retried at the next poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-alive:
			if !ok {
				return errLeaseLost
			}
		case <-tick.C:
		}
		// Drain the keep-alive answers that came meanwhile.
		for ok := true; ok; {
			select {
			case _, open := <-alive:
				if !open {
					return errLeaseLost
				}
			default:
				ok = false
			}
		}
	}
}

// fleetPrefix is where the replica's nodes are: <prefix>/nodes/<id>/.
func (p *Publisher) fleetPrefix() string { return source.EtcdNodesPrefix(p.prefix) + p.id + "/" }

// poll writes what changed in the streams' status since the previous poll,
// within the write rate bound.
func (p *Publisher) poll(ctx context.Context, lease clientv3.LeaseID, now time.Time) error {
	p.polls.Add(1)
	var (
		sum       *admin.FleetReplicaRollout
		standings map[string]*admin.FleetRollout
	)
	if p.opts.Rollout != nil {
		// Before the streams' status: a node's standing is at least as new
		// as its status.
		sum, standings = p.opts.Rollout()
	}
	cur := admin.FleetNodes(p.id, p.opts.Store.View(), p.streams.Streams())
	for id, n := range cur {
		n.Rollout = standings[id]
	}
	changes := diff(p.written, cur)
	n := p.rate.take(now, len(changes))
	todo := rotate(changes, p.cursor, n)
	p.pending.Store(int64(len(changes) - len(todo)))
	p.deferred.Add(uint64(len(changes) - len(todo)))
	if len(todo) == 0 {
		return p.markStage(ctx, lease, sum, len(changes) == 0)
	}
	ops := make([]clientv3.Op, len(todo))
	sizes := make([]int, len(todo))
	for i, c := range todo {
		key := p.fleetPrefix() + c.node
		if c.status == nil {
			ops[i], sizes[i] = clientv3.OpDelete(key), len(key)
			continue
		}
		b, err := json.Marshal(c.status)
		if err != nil {
			return err
		}
		ops[i], sizes[i] = clientv3.OpPut(key, string(b), clientv3.WithLease(lease)), len(key)+len(b)
	}
	for _, r := range batch(len(ops), func(i int) int { return sizes[i] }, p.opts.MaxTxnOps, p.opts.MaxTxnBytes) {
		if _, err := p.cli.Txn(ctx).Then(ops[r[0]:r[1]]...).Commit(); err != nil {
			return err
		}
		p.txns.Add(1)
		for _, c := range todo[r[0]:r[1]] {
			if c.status == nil {
				delete(p.written, c.node)
				p.deletes.Add(1)
			} else {
				p.written[c.node] = c.status
				p.puts.Add(1)
			}
			p.cursor = c.node
		}
		p.nodes.Store(int64(len(p.written)))
	}
	return p.markStage(ctx, lease, sum, len(changes) == len(todo))
}

// markStage writes the standing of the replica's nodes against the rollout
// into the replica's record when it changed and the poll wrote every change
// (all): the records of its nodes then all say it.
func (p *Publisher) markStage(ctx context.Context, lease clientv3.LeaseID, sum *admin.FleetReplicaRollout, all bool) error {
	if !all || sum.Equal(p.replica.Rollout) {
		return nil
	}
	rep := p.replica
	rep.Rollout = sum
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if _, err := p.cli.Put(ctx, source.EtcdReplicasPrefix(p.prefix)+p.id, string(b), clientv3.WithLease(lease)); err != nil {
		return err
	}
	p.replica = rep
	return nil
}

// failed records err in Stats.
func (p *Publisher) failed(err error) {
	p.errs.Add(1)
	p.mu.Lock()
	p.lastError = err.Error()
	p.mu.Unlock()
}
