package source

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/store"
)

// Rollouts with the etcd source (docs/etcd.md, "Rollouts with replicas"): a
// staged change is a generation (its target) served to the nodes of a stage
// while the others keep the generation before it (its base). Both are kept
// under P/gen/ while the rollout runs, and P/rollout/state says which are
// which and what stage is served. The source reads P/rollout/state at the
// revision of every generation it lists; when a rollout of that generation
// runs, it makes sure the store held the base generation first (committing it
// when it did not), so that the base is a revision the store's views share
// their unchanged entries with, and tells its EtcdRollouts. The state's other
// fields (the plan, the stage, the events) are the rollout package's
// (rollout/etcdrollout); the source reads only what it needs.

// EtcdRolloutStateKey returns the key of the state of the rollout of prefix:
// P/rollout/state (outside the source's watch range).
func EtcdRolloutStateKey(prefix string) string { return prefix + "/rollout/state" }

// EtcdRolloutLeaderKey returns the election prefix of the replicas that
// decide a rollout's stages: P/rollout/leader.
func EtcdRolloutLeaderKey(prefix string) string { return prefix + "/rollout/leader" }

// The phases of a rollout in P/rollout/state that keep its base generation
// served to some nodes (the rollout package's rollout.Running and
// rollout.Held), and that of a rollout rolled back (rollout.RolledBack).
const (
	EtcdRolloutRunning    = "running"
	EtcdRolloutHeld       = "held"
	EtcdRolloutRolledBack = "rolled_back"
)

// EtcdRollout is what the source reads of P/rollout/state.
type EtcdRollout struct {
	// ID names the rollout; Base and Target are its generations.
	ID     string `json:"id"`
	Base   int64  `json:"base"`
	Target int64  `json:"target"`
	// Phase is where it is: running and held serve two generations.
	Phase string `json:"phase"`
	// Raw is the whole value, ModRevision its etcd revision (0: absent).
	Raw         []byte `json:"-"`
	ModRevision int64  `json:"-"`
}

// Active reports whether the rollout serves its base to some nodes.
func (r EtcdRollout) Active() bool {
	return r.ModRevision != 0 && (r.Phase == EtcdRolloutRunning || r.Phase == EtcdRolloutHeld)
}

// ParseEtcdRollout reads the value of P/rollout/state at modRev.
func ParseEtcdRollout(value []byte, modRev int64) (EtcdRollout, error) {
	var r EtcdRollout
	if err := json.Unmarshal(value, &r); err != nil {
		return EtcdRollout{}, fmt.Errorf("rollout state: %w", err)
	}
	r.Raw, r.ModRevision = value, modRev
	return r, nil
}

// EtcdRollouts is told, by an Etcd source, what it commits while rollouts
// run: a rollout of package rollout/etcdrollout routes each node to the base
// or the target from it. Both methods are called with the source's lock held,
// from the goroutine that commits: they must not block on the source.
type EtcdRollouts interface {
	// Base returns the view of the store holding generation gen that it
	// keeps (a base it routes to), if any.
	Base(gen int64) (store.View, bool)
	// Committing is called before the source commits generation gen, which
	// r (read at the revision gen was listed at) names as its target, with
	// a view of the store holding r's base generation.
	Committing(r EtcdRollout, base store.View)
	// Committed is called after the source committed generation gen listed
	// whole, with the view it made and the rollout state read with it
	// (EtcdRollout{} when P/rollout/state is absent).
	Committed(r EtcdRollout, gen string, cur store.View)
}

// readRollout reads P/rollout/state at revision rev.
func (e *Etcd) readRollout(ctx context.Context, rev int64) (EtcdRollout, error) {
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	resp, err := e.cli.Get(rctx, EtcdRolloutStateKey(e.prefix), clientv3.WithRev(rev))
	if err != nil {
		return EtcdRollout{}, err
	}
	if len(resp.Kvs) == 0 {
		return EtcdRollout{}, nil
	}
	r, err := ParseEtcdRollout(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		// Unreadable: served as if no rollout ran (the target to every node),
		// and said loudly.
		e.log.Error("etcd rollout state refused: the current generation is served to every node", "key", EtcdRolloutStateKey(e.prefix), "err", err)
		return EtcdRollout{}, nil
	}
	return r, nil
}

// listGeneration lists gen at rev and commits it whole; with EtcdRollouts, it
// reads the rollout state at rev too and, when a rollout of gen runs, makes
// sure the store held its base before. Guarded by syncing.
func (e *Etcd) listGeneration(ctx context.Context, gen string, rev int64) (store.Result, error) {
	if e.rollouts == nil {
		return e.listCommit(ctx, gen, rev, "")
	}
	r, err := e.readRollout(ctx, rev)
	if err != nil {
		e.unreachable(err)
		return store.Result{}, err
	}
	if r.Active() && strconv.FormatInt(r.Target, 10) == gen && r.Base != r.Target {
		base, ok := e.rollouts.Base(r.Base)
		if !ok {
			baseGen := strconv.FormatInt(r.Base, 10)
			ok = e.gen == baseGen && e.listed && !e.keepRestored
			if !ok {
				ok, err = e.loadBase(ctx, r, baseGen, gen, rev)
				if err != nil {
					return store.Result{}, err
				}
			}
			base = e.st.View()
		}
		if ok {
			e.rollouts.Committing(r, base)
		}
	}
	why := ""
	switch g := strconv.FormatInt; {
	case r.ModRevision == 0:
	case r.Active() && g(r.Target, 10) == gen:
		why = "rollout " + r.ID
	case r.Phase == EtcdRolloutRolledBack && g(r.Base, 10) == gen:
		why = "rollback of rollout " + r.ID
	}
	res, err := e.listCommit(ctx, gen, rev, why)
	if err != nil {
		return res, err
	}
	e.rollouts.Committed(r, gen, e.st.View())
	return res, nil
}

// loadBase commits the base generation of r, listed at rev, before its
// target: ok is false, and nothing is committed, when the base holds no key
// (deleted by hand): serving nothing to the nodes outside the stage would be
// worse than serving them the target. Guarded by syncing.
func (e *Etcd) loadBase(ctx context.Context, r EtcdRollout, baseGen, gen string, rev int64) (ok bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	resp, err := e.cli.Get(rctx, EtcdGenPrefix(e.prefix, baseGen), clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		e.unreachable(err)
		return false, err
	}
	if resp.Count == 0 {
		e.log.Error("etcd rollout: its base generation holds no key: its target is served to every node",
			"prefix", e.prefix, "rollout", r.ID, "base", baseGen, "target", gen, "revision", rev)
		return false, nil
	}
	e.log.Info("etcd rollout: loading its base generation", "prefix", e.prefix, "rollout", r.ID, "base", baseGen, "target", gen, "revision", rev)
	if _, err := e.listCommit(ctx, baseGen, rev, "base of rollout "+r.ID); err != nil {
		return false, err
	}
	return true, nil
}
