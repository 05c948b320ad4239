package etcdrollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// ErrConflict is wrapped by the error of a decision another writer (a
// replica, an apply) made first: the state it was made from is gone.
var ErrConflict = errors.New("the rollout state changed since it was read")

// Run follows P/rollout/state (the stage every replica serves) and stands in
// the election of the replica that decides the stages, deciding while it
// wins, until ctx ends; then it resigns, so another replica decides at once.
// It returns nil then.
func (r *Replica) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { r.follow(ctx) })
	wg.Go(func() { r.campaign(ctx) })
	wg.Wait()
	return nil
}

// follow watches P/rollout/state and adopts each value (update).
func (r *Replica) follow(ctx context.Context) {
	key := source.EtcdRolloutStateKey(r.prefix)
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, r.timeout)
		resp, err := r.cli.Get(rctx, key)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("etcd rollout: reading the state", "key", key, "err", err)
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		if len(resp.Kvs) > 0 {
			r.adopt(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range r.cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break
			}
			wait = 100 * time.Millisecond
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					r.adopt(ev.Kv.Value, ev.Kv.ModRevision)
				}
			}
		}
		wcancel()
		if !sleep(ctx, wait) {
			return
		}
	}
}

func (r *Replica) adopt(value []byte, modRev int64) {
	st, err := ParseState(value)
	if err != nil {
		r.log.Error("etcd rollout state refused", "key", source.EtcdRolloutStateKey(r.prefix), "err", err)
		return
	}
	r.update(st, modRev)
}

// campaign stands in the election under P/rollout/leader and decides while
// it leads.
func (r *Replica) campaign(ctx context.Context) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		// The lease is granted under ctx (etcd may not answer); the session
		// keeping it alive outlives ctx until it is closed, since closing it
		// revokes the lease, which needs a live context.
		lease, err := r.cli.Grant(ctx, int64(math.Ceil(r.ttl.Seconds())))
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("etcd rollout: a lease for the election", "err", err)
			}
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
		sess, err := concurrency.NewSession(r.cli, concurrency.WithLease(lease.ID), concurrency.WithContext(sctx))
		if err != nil {
			scancel()
			r.log.Warn("etcd rollout: a lease for the election", "err", err)
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		el := concurrency.NewElection(sess, source.EtcdRolloutLeaderKey(r.prefix))
		if err := el.Campaign(ctx, r.id); err != nil {
			r.closeSession(sess, scancel)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		wait = 100 * time.Millisecond
		r.leader.Store(true)
		r.log.Info("etcd rollout: this replica decides the stages", "replica", r.id)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done(): // the lease is lost: another replica may lead
			case <-lctx.Done():
			}
			cancel()
		}()
		r.decideLoop(lctx)
		r.leader.Store(false)
		cancel()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = el.Resign(rctx)
		rcancel()
		r.closeSession(sess, scancel)
		r.log.Info("etcd rollout: this replica no longer decides", "replica", r.id)
	}
}

// closeSession stops keeping the session's lease alive and revokes it (the
// candidacy goes with it), giving etcd 2 seconds to answer: one that does not
// lets the lease expire. Then it ends the session's context.
func (r *Replica) closeSession(s *concurrency.Session, cancel context.CancelFunc) {
	s.Orphan()
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, _ = r.cli.Revoke(rctx, s.Lease())
	rcancel()
	cancel()
}

// decideLoop decides every interval until ctx ends.
func (r *Replica) decideLoop(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if err := r.decide(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrConflict) {
			r.log.Warn("etcd rollout: deciding", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tally is where the nodes of a rollout's stage stand, summed over the
// replicas' fleet records.
type Tally struct {
	ACKed, NACKed, Pending int
	// Ready is set when every replica's record gives the standing of its
	// nodes against the stage (admin.FleetReplica.Rollout); Waiting names
	// those that do not yet.
	Ready   bool
	Waiting []string
	// Seen counts the nodes of the stage the replicas saw during it, Gone
	// those of them no longer connected to the replica that saw them
	// (admin.FleetReplicaRollout): a gone node counts as pending, so that a
	// node that crashed on the target does not pass for one that never
	// connected. A replica that restarts forgets the nodes it saw. Moved
	// counts the gone nodes found connected to another replica, where they
	// are counted with its nodes: they are not in Gone.
	Seen, Gone, Moved int
	// NACKs are the nodes that NACKed (at most admin.MaxFleetNACKs a
	// replica), with what they said.
	NACKs []NodeNACK
}

// NodeNACK is a node's NACK as its fleet record carries it.
type NodeNACK struct {
	Node, Replica string
	Rejection     stream.Rejection
}

// tally reads the state, and while a rollout runs the replicas' records at
// the same revision: each sums its nodes' standing, so the decider reads one
// key a replica, not one a node. ok is false when no rollout runs.
func (r *Replica) tally(ctx context.Context) (st State, modRev int64, t Tally, ok bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	sresp, err := r.cli.Get(rctx, source.EtcdRolloutStateKey(r.prefix))
	if err != nil || len(sresp.Kvs) == 0 {
		return State{}, 0, Tally{}, false, err
	}
	if st, err = ParseState(sresp.Kvs[0].Value); err != nil || !st.Active() {
		return State{}, 0, Tally{}, false, err
	}
	modRev = sresp.Kvs[0].ModRevision
	// The replicas only while a rollout runs, at the revision of the state.
	resp, err := r.cli.Get(rctx, source.EtcdReplicasPrefix(r.prefix), clientv3.WithPrefix(), clientv3.WithRev(sresp.Header.Revision))
	if err != nil {
		return State{}, 0, Tally{}, false, err
	}
	t.Ready = len(resp.Kvs) > 0
	var replicas []string
	var gone []goneNode
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), source.EtcdReplicasPrefix(r.prefix))
		var rep admin.FleetReplica
		_ = json.Unmarshal(kv.Value, &rep)
		sum := rep.Rollout
		if sum == nil || sum.ID != st.ID || sum.Stage != st.Stage {
			t.Ready = false
			t.Waiting = append(t.Waiting, id)
			continue
		}
		t.ACKed += sum.ACKed
		t.NACKed += sum.NACKed
		t.Pending += sum.Pending
		t.Seen += sum.Seen
		t.Gone += sum.Gone
		for _, n := range sum.NACKs {
			t.NACKs = append(t.NACKs, NodeNACK{Node: n.Node, Replica: id, Rejection: n.Rejection})
		}
		replicas = append(replicas, id)
		for _, n := range sum.GoneNodes {
			gone = append(gone, goneNode{replica: id, node: n})
		}
	}
	if len(gone) > 0 && len(replicas) > 1 {
		moved, err := r.moved(rctx, st, replicas, gone)
		if err != nil {
			return State{}, 0, Tally{}, false, err
		}
		t.Moved = min(moved, t.Gone)
		t.Gone -= t.Moved
	}
	return st, modRev, t, true, nil
}

// goneNode is a node a replica saw during the stage and no longer serves.
type goneNode struct{ replica, node string }

// maxMovedLookups bounds the fleet records a decision reads to find gone
// nodes on other replicas; maxMovedTxnOps the reads of one txn (etcd's
// default --max-txn-ops is 128).
const (
	maxMovedLookups = 512
	maxMovedTxnOps  = 64
)

// moved counts the gone nodes that another replica serves now and publishes
// as having ACKed the same stage: a node that moved (its replica stopped,
// --max-connection-age, a load balancer) and ACKed there is not gone. Only
// an ACK counts: the other replica's sum, read at another revision, may not
// count the node yet (its publisher writes the nodes' records before its
// sum), so a node pending or NACKed there stays gone, which holds the stage
// until that replica's sum says so. At most maxMovedLookups records are
// read; a gone node past them stays gone, which holds the stage rather than
// passing it.
func (r *Replica) moved(ctx context.Context, st State, replicas []string, gone []goneNode) (int, error) {
	type lookup struct {
		gone int // index in gone
		key  string
	}
	var lookups []lookup
	for i, g := range gone {
		for _, other := range replicas {
			if other != g.replica && len(lookups) < maxMovedLookups {
				lookups = append(lookups, lookup{gone: i, key: source.EtcdNodesPrefix(r.prefix) + other + "/" + g.node})
			}
		}
	}
	found := make([]bool, len(gone))
	for start := 0; start < len(lookups); start += maxMovedTxnOps {
		batch := lookups[start:min(start+maxMovedTxnOps, len(lookups))]
		ops := make([]clientv3.Op, len(batch))
		for i, l := range batch {
			ops[i] = clientv3.OpGet(l.key)
		}
		resp, err := r.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return 0, err
		}
		for i, rr := range resp.Responses {
			for _, kv := range rr.GetResponseRange().GetKvs() {
				var n struct{ Rollout *admin.FleetRollout } // the rest of admin.FleetNode is not read
				if json.Unmarshal(kv.Value, &n) == nil && n.Rollout != nil && n.Rollout.ID == st.ID && n.Rollout.Stage == st.Stage &&
					n.Rollout.State == stream.NodeACKed.String() {
					found[batch[i].gone] = true
				}
			}
		}
	}
	moved := 0
	for _, f := range found {
		if f {
			moved++
		}
	}
	return moved, nil
}

// maxNamedNACKs bounds the NACKs a rollback's reason names; the event's
// Rejections keep rollout.MaxRejections of them.
const maxNamedNACKs = 3

// decide reads the state and the fleet and makes the decision they call for,
// as the rollout package's Manager does: a rollback on MaxNACKs NACKs; the
// next stage (or promoted) once every replica worked out the stage, at least
// one node of it ACKed and every one did (fewer NACKs than MaxNACKs hold the
// stage until its window ends; a node seen during the stage and gone since
// counts as pending); once the window ended, the next stage when no node of
// the stage was seen by any replica (event "empty"), the plan's OnTimeout
// otherwise.
func (r *Replica) decide(ctx context.Context) error {
	st, modRev, t, ok, err := r.tally(ctx)
	if err != nil || !ok {
		return err
	}
	now := r.now().UTC()
	// The window is measured on this replica's clock, from when it first saw
	// the stage: the times in the state come from other hosts' clocks (the
	// stage 0's from where leanxds apply ran).
	if key := st.ID + "/" + strconv.Itoa(st.Stage); key != r.windowKey {
		r.windowKey, r.windowStart = key, r.now()
	}
	switch {
	case t.NACKed >= st.Plan.MaxNACKs:
		if err := r.rollBack(ctx, st, modRev, now, nackReason(&st, &t), nackRejections(t.NACKs)); err != nil {
			return err
		}
		r.counted("rollback", t.NACKed)
		return nil
	case st.Phase == rollout.Running && t.Ready && t.ACKed > 0 && t.Pending == 0 && t.Gone == 0 && t.NACKed == 0:
		next := st.next(now, fmt.Sprintf("its %d nodes ACKed", t.ACKed))
		if err := r.write(ctx, st, modRev, next); err != nil {
			return err
		}
		r.counted(next.Events[len(next.Events)-1].What, 0)
		return nil
	case st.Phase == rollout.Running && r.now().Sub(r.windowStart) >= st.Plan.Window && t.Ready && t.ACKed+t.NACKed+t.Pending+t.Seen+t.Gone == 0:
		// No node of the stage connected to any replica during it (1% of a
		// small fleet may be none): it passes once its window ended. A node
		// seen and gone since (it may have crashed on the target) makes the
		// stage not empty: the window ends as the plan's OnTimeout says.
		next := st.nextAs(now, "empty", fmt.Sprintf("no node of it connected within its window of %s", st.Plan.Window))
		if err := r.write(ctx, st, modRev, next); err != nil {
			return err
		}
		r.counted("empty", 0)
		return nil
	case st.Phase == rollout.Running && r.now().Sub(r.windowStart) >= st.Plan.Window:
		why := fmt.Sprintf("stage %s: its window of %s ended with %d nodes ACKed, %d pending", st.stageName(st.Stage), st.Plan.Window, t.ACKed, t.Pending)
		if t.Moved > 0 {
			why += fmt.Sprintf(", %d moved to another replica", t.Moved)
		}
		if t.Gone > 0 {
			why += fmt.Sprintf(", %d seen during the stage and gone", t.Gone)
		}
		switch {
		case len(t.Waiting) > 0:
			why += ", replicas " + strings.Join(t.Waiting, ", ") + " not reporting the stage"
		case !t.Ready:
			why += ", no replica publishing its fleet status"
		}
		if st.Plan.OnTimeout == rollout.RollBack {
			err = r.rollBack(ctx, st, modRev, now, why, nil)
			if err == nil {
				r.counted("rollback", 0)
			}
			return err
		}
		err = r.write(ctx, st, modRev, st.held(now, why))
		if err == nil {
			r.counted("held", 0)
		}
		return err
	}
	return nil
}

// nackReason is a rollback's reason: how many of the stage's nodes NACKed,
// and the first maxNamedNACKs of the NACKs, each detail cut to
// rollout.MaxDetail bytes, with how many more there are.
func nackReason(st *State, t *Tally) string {
	var msgs []string
	for _, n := range t.NACKs[:min(len(t.NACKs), maxNamedNACKs)] {
		msgs = append(msgs, fmt.Sprintf("NACK from node %s (replica %s) of %s: %s", n.Node, n.Replica, n.Rejection.TypeURL, rollout.BoundDetail(n.Rejection.Detail)))
	}
	why := fmt.Sprintf("stage %s: %d of its nodes NACKed (at most %d): %s", st.stageName(st.Stage), t.NACKed, st.Plan.MaxNACKs, strings.Join(msgs, "; "))
	if more := t.NACKed - len(msgs); more > 0 {
		why += fmt.Sprintf(" and %d more", more)
	}
	return why
}

// nackRejections are the rejections a rollback's event keeps:
// rollout.BoundRejections of the NACKs.
func nackRejections(nacks []NodeNACK) []stream.Rejection {
	rej := make([]stream.Rejection, 0, min(len(nacks), rollout.MaxRejections))
	for _, n := range nacks[:min(len(nacks), rollout.MaxRejections)] {
		rej = append(rej, n.Rejection)
	}
	return rollout.BoundRejections(rej)
}

// write saves next in place of st, read at modRev: when next is promoted,
// the base generation is deleted in the same txn.
func (r *Replica) write(ctx context.Context, st State, modRev int64, next State) error {
	if err := writeState(ctx, r.cli, r.prefix, st, modRev, next, r.timeout); err != nil {
		return err
	}
	r.logDecision(next)
	return nil
}

// rollBack puts the base back: current to the base generation, the state
// rolled back, the target generation deleted, in one txn. The rollback never
// depends on its diagnostics: a state too large for etcd (its request limit)
// is written again with the reason cut short, and without rejections.
func (r *Replica) rollBack(ctx context.Context, st State, modRev int64, at time.Time, why string, rej []stream.Rejection) error {
	next := st.rolledBack(at, why, rej)
	err := writeState(ctx, r.cli, r.prefix, st, modRev, next, r.timeout)
	if tooLarge(err) {
		r.log.Warn("etcd rollout: the rollback's state is too large for etcd; writing it without its rejections", "rollout", st.ID, "err", err)
		next = st.withoutRejections().rolledBack(at, rollout.BoundDetail(why), nil)
		err = writeState(ctx, r.cli, r.prefix, st, modRev, next, r.timeout)
	}
	if err != nil {
		return err
	}
	r.logDecision(next)
	return nil
}

// tooLarge reports whether err is a request refused for its size: by etcd
// (over its --max-request-bytes), or by the client before it is sent (over
// its MaxCallSendMsgSize).
func tooLarge(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) ||
		strings.Contains(err.Error(), "request is too large") {
		return true
	}
	return status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "larger than max")
}

func (r *Replica) logDecision(s State) {
	ev := s.Events[len(s.Events)-1]
	lvl := r.log.Info
	if s.Phase == rollout.RolledBack || s.Phase == rollout.Held {
		lvl = r.log.Warn
	}
	lvl("etcd rollout: "+ev.What, "rollout", s.ID, "stage", s.stageName(s.Stage), "phase", s.Phase, "message", ev.Message)
}

// writeState saves next in place of st, read at modRev, in one txn guarded by
// modRev (ErrConflict when the state changed since), with what next's phase
// does to the generations: rolled back makes the base current again and
// deletes the target; promoted deletes the base. Both are guarded by current
// still naming the target.
func writeState(ctx context.Context, cli *clientv3.Client, prefix string, st State, modRev int64, next State, timeout time.Duration) error {
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	key := source.EtcdRolloutStateKey(prefix)
	cur := source.EtcdCurrentKey(prefix)
	target := strconv.FormatInt(st.Target, 10)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", modRev)}
	ops := []clientv3.Op{clientv3.OpPut(key, string(b))}
	switch next.Phase {
	case rollout.RolledBack:
		cmps = append(cmps, clientv3.Compare(clientv3.Value(cur), "=", target))
		ops = append(ops, clientv3.OpPut(cur, strconv.FormatInt(st.Base, 10)),
			clientv3.OpDelete(source.EtcdGenPrefix(prefix, target), clientv3.WithPrefix()))
	case rollout.Promoted:
		cmps = append(cmps, clientv3.Compare(clientv3.Value(cur), "=", target))
		if st.Base != st.Target {
			ops = append(ops, clientv3.OpDelete(source.EtcdGenPrefix(prefix, strconv.FormatInt(st.Base, 10)), clientv3.WithPrefix()))
		}
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cli.Txn(rctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("rollout %s: saving %s: %w", st.ID, next.Phase, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("rollout %s: %w", st.ID, ErrConflict)
	}
	return nil
}

// Read returns the rollout state under prefix, and its ModRevision;
// rollout.ErrNoRollout when there is none.
func Read(ctx context.Context, cli *clientv3.Client, prefix string) (State, int64, error) {
	resp, err := cli.Get(ctx, source.EtcdRolloutStateKey(prefix))
	if err != nil {
		return State{}, 0, err
	}
	if len(resp.Kvs) == 0 {
		return State{}, 0, rollout.ErrNoRollout
	}
	st, err := ParseState(resp.Kvs[0].Value)
	return st, resp.Kvs[0].ModRevision, err
}

// Promote moves the rollout under prefix to its next stage now (promoted
// after the last), whatever its nodes say; rollout.ErrNoRollout when none
// runs. Any replica, or leanxds, may call it.
func Promote(ctx context.Context, cli *clientv3.Client, prefix, reason string) (State, error) {
	reason = rollout.BoundDetail(reason) // kept in the state
	return change(ctx, cli, prefix, func(st State, at time.Time) State {
		return st.next(at, "promoted by hand: "+orDash(reason))
	})
}

// Abort rolls the rollout under prefix back now: every node is served its
// base again; rollout.ErrNoRollout when none runs.
func Abort(ctx context.Context, cli *clientv3.Client, prefix, reason string) (State, error) {
	reason = rollout.BoundDetail(reason) // kept in the state
	return change(ctx, cli, prefix, func(st State, at time.Time) State {
		return st.rolledBack(at, "aborted by hand: "+orDash(reason), nil)
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// change applies f to the running rollout's state, again while another writer
// wins (a few times).
func change(ctx context.Context, cli *clientv3.Client, prefix string, f func(State, time.Time) State) (State, error) {
	for range 5 {
		st, modRev, err := Read(ctx, cli, prefix)
		if err != nil {
			return State{}, err
		}
		if !st.Active() {
			return st, fmt.Errorf("rollout %s is %s: %w", st.ID, st.Phase, rollout.ErrNoRollout)
		}
		next := f(st, time.Now().UTC())
		err = writeState(ctx, cli, prefix, st, modRev, next, DefaultRequestTimeout)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return next, err
	}
	return State{}, fmt.Errorf("rollout: %w, five times", ErrConflict)
}

// Promote is Promote on the replica's prefix (the admin endpoint).
func (r *Replica) Promote(reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.timeout)
	defer cancel()
	_, err := Promote(ctx, r.cli, r.prefix, reason)
	if err == nil {
		r.counted("promote", 0)
	}
	return err
}

// Abort is Abort on the replica's prefix (the admin endpoint).
func (r *Replica) Abort(reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.timeout)
	defer cancel()
	_, err := Abort(ctx, r.cli, r.prefix, reason)
	if err == nil {
		r.counted("abort", 0)
	}
	return err
}

// ErrRollbackRevision is returned by Replica.Rollback for a store revision:
// with the etcd source, content is rolled back in etcd, where the replicas
// read it (leanxds apply of the earlier config), not in one replica's store.
var ErrRollbackRevision = errors.New("with the etcd source, roll back by applying the earlier config to etcd (leanxds apply), or abort the running rollout: a store revision is one replica's")

// Rollback is the admin server's big red button with the etcd source: with to
// 0, it aborts the running rollout (every replica serves its base again); a
// store revision is ErrRollbackRevision, and no running rollout
// rollout.ErrNoRollout. The store's result is that of no commit: the
// replicas' sources commit the base when they read it.
func (r *Replica) Rollback(to uint64, label string) (store.Result, error) {
	if to != 0 {
		return store.Result{}, ErrRollbackRevision
	}
	return store.Result{}, r.Abort(label)
}

// sleep waits d, or until ctx ends: it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
