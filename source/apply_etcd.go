package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ApplyEtcd (leanxds apply) writes a config directory to etcd under a prefix,
// in the layout the etcd source reads (docs/etcd.md):
//
//	<prefix>/current                                  the generation served
//	<prefix>/gen/<gen>/<scope>/<message full name>/<name>   one resource, as JSON
//	<prefix>/applied                                  the last apply: {at, by, generation, summary}
//	<prefix>/staging                                  a generation being written (under a lease)
//
// It reads and checks the directory exactly as leanxds validate does
// (CheckDir), reads what the current generation holds at one etcd revision,
// and compares them key by key, by content. Then, unless DryRun is set:
//
//   - a change that fits one txn (MaxTxnOps, MaxTxnBytes) is written in place,
//     in the current generation, with the applied key, in one txn guarded by
//     the revision it was read at;
//   - a larger one is written whole into generation <current+1>, which no
//     reader reads, in as many txns as it needs; then current is flipped to
//     it in one guarded txn, and the old generation is deleted. A reader sees
//     all of the old content or all of the new, whatever the size.
//
// A concurrent writer (another apply, a key of the current generation put by
// hand) makes the guarded txn fail: ApplyEtcd then returns an error wrapping
// ErrApplyConflict and leaves etcd as it was (it deletes the generation it was
// writing). A key deleted by hand is the one change the guard cannot see (a
// compare over a key range sees only the keys still in it). Applying the same
// directory again writes nothing.
func ApplyEtcd(ctx context.Context, cli *clientv3.Client, prefix, dir string, opts ApplyOptions) (ApplyResult, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	res := ApplyResult{Dir: dir, Prefix: prefix, DryRun: opts.DryRun}
	if prefix == "" {
		return res, errors.New("apply: an empty etcd prefix")
	}
	lim := txnLimits{ops: opts.MaxTxnOps, bytes: opts.MaxTxnBytes}
	if lim.ops <= 0 {
		lim.ops = DefaultMaxTxnOps
	}
	if lim.bytes <= 0 {
		lim.bytes = DefaultMaxTxnBytes
	}

	// The same code path as leanxds validate: what apply writes, serve accepts.
	cfg, warnings, err := checkDir(dir, opts.Dir)
	if err != nil {
		return res, &InvalidDirError{Dir: dir, Err: err}
	}
	res.Warnings = warnings
	want, err := applyEntries(cfg)
	if err != nil {
		return res, err
	}

	keys := applyKeys{prefix: prefix}
	held, err := readApplyState(ctx, cli, keys)
	if err != nil {
		return res, err
	}
	d := diffApply(want, held.values)
	res.ReadRevision = held.rev
	res.FromGeneration = held.gen
	res.Generation = held.gen
	res.Added, res.Changed, res.Deleted, res.Unchanged = d.added, d.changed, d.deleted, d.unchanged
	if held.rollout.Active() && opts.Rollout == nil {
		return res, fmt.Errorf("apply: rollout %s is %s (generation %d to %d): %w", held.rollout.ID, held.rollout.Phase, held.rollout.Base, held.rollout.Target, ErrRolloutRunning)
	}

	w := applyWrite{cli: cli, keys: keys, held: held, lim: lim, opts: opts, diff: d}
	ops := inPlaceOps(want, d)
	// A staged change is always a new generation: its base stays as it is.
	staged := opts.Rollout != nil && held.current
	if opts.Rollout != nil && !held.current && !d.empty() {
		res.Warnings = append(res.Warnings, "no generation is served yet: the change is not staged, every node is served it")
	}
	var batches [][]applyOp
	switch {
	case d.empty() && (held.current || len(want) == 0):
		res.Mode = ApplyNone
		return res, nil
	case !staged && held.current && lim.fitsOne(keys.gen(held.gen), ops):
		res.Mode = ApplyInPlace
		res.Txns = 1
	default:
		res.Mode = ApplyNewGeneration
		res.Generation = held.gen + 1
		if batches, err = lim.batches(keys.gen(res.Generation), allPuts(want)); err != nil {
			return res, err
		}
		res.Txns = len(batches) + 2 // the claim, the batches, the flip
		if held.current {
			res.Txns++ // the old generation deleted
		}
	}
	if staged {
		// The base is what the nodes outside the stages run: the generation
		// served, or the base of the rollout this one supersedes.
		res.RolloutBase = held.gen
		if held.rollout.Active() {
			res.RolloutBase = held.rollout.Base
			res.Superseded = held.rollout.ID
		}
		if res.RolloutBase == held.gen {
			res.Txns-- // the generation served is the base: it is kept
		}
	}
	if opts.DryRun {
		return res, nil
	}
	if opts.beforeWrite != nil {
		opts.beforeWrite(ctx)
	}
	if res.Mode == ApplyInPlace {
		res.Revision, err = w.inPlace(ctx, ops)
		return res, err
	}
	if staged {
		w.rollout, err = opts.Rollout(held.rollout, res.RolloutBase, res.Generation)
		if err != nil {
			return res, fmt.Errorf("apply: the rollout state: %w", err)
		}
		if r, err := ParseEtcdRollout(w.rollout, 1); err != nil || r.Base != res.RolloutBase || r.Target != res.Generation || !r.Active() {
			return res, fmt.Errorf("apply: the rollout state %s does not name base %d and target %d as running", w.rollout, res.RolloutBase, res.Generation)
		} else {
			res.Rollout = r.ID
		}
	}
	res.Revision, err = w.newGeneration(ctx, res.Generation, batches)
	if err != nil {
		return res, err
	}
	if held.current && !(staged && held.gen == res.RolloutBase) {
		// Nobody reads the old generation since the flip: delete it. Failing
		// that, the content applied is still served; the old keys are garbage.
		if _, err := cli.Delete(ctx, keys.gen(held.gen), clientv3.WithPrefix()); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("generation %d not deleted (%v): etcdctl del --prefix %s", held.gen, err, keys.gen(held.gen)))
		}
	}
	return res, nil
}

// ApplyOptions are how ApplyEtcd reads the directory and writes it.
type ApplyOptions struct {
	// Dir is how the directory is read and checked, as leanxds validate and
	// serve read it: AllowDangling and the size limits apply.
	Dir DirOptions
	// MaxTxnOps and MaxTxnBytes are the most operations and bytes one txn
	// holds (etcd's --max-txn-ops and --max-request-bytes): a change larger
	// than that is written as a new generation. 0 is DefaultMaxTxnOps (128)
	// and DefaultMaxTxnBytes (1.5 MiB).
	MaxTxnOps   int
	MaxTxnBytes int
	// DryRun stops after the diff: nothing is written.
	DryRun bool
	// Rollout, if not nil, stages the change (leanxds apply --rollout): it is
	// written as a new generation, and the txn that makes it current writes
	// P/rollout/state too, with the value Rollout returns for the rollout
	// read (prev; EtcdRollout{} when none), the base generation (the one
	// served, or prev's base when prev runs: the new rollout supersedes it)
	// and the target (the new generation). The base generation is kept; a
	// superseded target is deleted. Package rollout/etcdrollout gives it
	// (etcdrollout.Start). Without Rollout, an apply while a rollout runs
	// fails with ErrRolloutRunning.
	Rollout func(prev EtcdRollout, base, target int64) ([]byte, error)
	// By says who applies, in <prefix>/applied (e.g. user@host).
	By string
	// StagingTTL is the lease of the staging key while a new generation is
	// written: if apply dies, the next apply may take the prefix over once it
	// expires. 0 is 60s.
	StagingTTL time.Duration

	// beforeWrite, if not nil, is called between the diff and the first
	// write, and afterBatch after each txn that writes a new generation's
	// keys (tests force a concurrent writer there).
	beforeWrite func(context.Context)
	afterBatch  func(ctx context.Context, txn int)
}

// ApplyMode is how ApplyEtcd writes a change.
type ApplyMode string

const (
	// ApplyNone: etcd holds the directory already; nothing is written.
	ApplyNone ApplyMode = "none"
	// ApplyInPlace: the change is written in the current generation, in one txn.
	ApplyInPlace ApplyMode = "in-place"
	// ApplyNewGeneration: the directory is written whole into a new generation,
	// in several txns, then made current in one.
	ApplyNewGeneration ApplyMode = "new-generation"
)

// ApplyResult is what ApplyEtcd did, or would do with DryRun. Its JSON form is
// that of leanxds apply --output json.
type ApplyResult struct {
	Dir    string `json:"dir"`
	Prefix string `json:"prefix"`
	DryRun bool   `json:"dry_run"`
	// Mode is how the change is written.
	Mode ApplyMode `json:"mode"`
	// ReadRevision is the etcd revision the diff was computed at.
	ReadRevision int64 `json:"read_revision"`
	// FromGeneration is the generation current was at (0: none), and
	// Generation the one current is at after the apply.
	FromGeneration int64 `json:"from_generation"`
	Generation     int64 `json:"generation"`
	// Revision is the etcd revision of the txn that published the change: 0
	// when nothing was written.
	Revision int64 `json:"revision"`
	// Txns counts the txns the change takes.
	Txns int `json:"txns"`
	// Rollout is the id of the rollout that stages the change, RolloutBase
	// its base generation, and Superseded the id of the rollout it replaced.
	Rollout     string `json:"rollout,omitempty"`
	RolloutBase int64  `json:"rollout_base,omitempty"`
	Superseded  string `json:"superseded,omitempty"`
	// Added, Changed and Deleted are the keys the change adds, changes and
	// deletes, relative to the generation (<scope>/<message full name>/<name>),
	// sorted; Unchanged counts the others.
	Added     []string `json:"added"`
	Changed   []string `json:"changed"`
	Deleted   []string `json:"deleted"`
	Unchanged int      `json:"unchanged"`
	// Warnings are the dangling references AllowDangling let through, and
	// what went wrong after the change was published.
	Warnings []string `json:"warnings,omitempty"`
}

// Summary returns the result in one line, as leanxds apply prints it last.
func (r ApplyResult) Summary() string {
	counts := fmt.Sprintf("%d added, %d changed, %d deleted, %d unchanged", len(r.Added), len(r.Changed), len(r.Deleted), r.Unchanged)
	switch {
	case r.Mode == ApplyNone:
		return fmt.Sprintf("no changes: %s; generation %d at revision %d", counts, r.Generation, r.ReadRevision)
	case r.DryRun && r.RolloutBase != 0:
		return fmt.Sprintf("dry run: %s; would write generation %d (%d txns) and stage it over generation %d; read at revision %d", counts, r.Generation, r.Txns, r.RolloutBase, r.ReadRevision)
	case r.DryRun && r.Mode == ApplyInPlace:
		return fmt.Sprintf("dry run: %s; would write in place in generation %d (1 txn); read at revision %d", counts, r.Generation, r.ReadRevision)
	case r.DryRun:
		return fmt.Sprintf("dry run: %s; would write generation %d (%d txns); read at revision %d", counts, r.Generation, r.Txns, r.ReadRevision)
	case r.Mode == ApplyInPlace:
		return fmt.Sprintf("applied: %s; in place in generation %d (1 txn) at revision %d", counts, r.Generation, r.Revision)
	}
	if r.Rollout != "" {
		return fmt.Sprintf("applied: %s; generation %d staged over generation %d by rollout %s (%d txns), current at revision %d", counts, r.Generation, r.RolloutBase, r.Rollout, r.Txns, r.Revision)
	}
	return fmt.Sprintf("applied: %s; generation %d replaces %d (%d txns), current at revision %d", counts, r.Generation, r.FromGeneration, r.Txns, r.Revision)
}

// ErrRolloutRunning is wrapped by the error ApplyEtcd returns, without
// ApplyOptions.Rollout, while a rollout runs: apply with a rollout to
// supersede it, or promote or abort it first.
var ErrRolloutRunning = errors.New("a rollout is running: stage the change with a rollout to supersede it, or promote or abort it first")

// ErrApplyConflict is wrapped by the error ApplyEtcd returns when another
// writer changed the prefix between its read and its write: nothing was
// applied, and applying again is safe.
var ErrApplyConflict = errors.New("another writer changed the etcd prefix since it was read: nothing was applied; apply again")

// InvalidDirError is the error ApplyEtcd returns for a directory leanxds
// validate refuses; ErrorLines(Err) lists why, one problem a line.
type InvalidDirError struct {
	Dir string
	Err error
}

func (e *InvalidDirError) Error() string { return e.Dir + ": invalid: " + e.Err.Error() }
func (e *InvalidDirError) Unwrap() error { return e.Err }

// applyKeys are the keys of one prefix.
type applyKeys struct{ prefix string }

func (k applyKeys) current() string { return EtcdCurrentKey(k.prefix) }
func (k applyKeys) applied() string { return k.prefix + "/applied" }
func (k applyKeys) staging() string { return k.prefix + "/staging" }
func (k applyKeys) rollout() string { return EtcdRolloutStateKey(k.prefix) }

// gen is the prefix of a generation's keys, with its trailing slash.
func (k applyKeys) gen(g int64) string {
	return EtcdGenPrefix(k.prefix, strconv.FormatInt(g, 10))
}

// applyState is what etcd holds under a prefix at one revision.
type applyState struct {
	// rev is the revision it was read at.
	rev int64
	// current is set when <prefix>/current exists; gen is its generation (0
	// when absent) and currentMod its ModRevision (0 when absent).
	current    bool
	gen        int64
	currentMod int64
	// appliedMod is the ModRevision of <prefix>/applied (0 when absent).
	appliedMod int64
	// values are the current generation's values, by key relative to it.
	values map[string][]byte
	// rollout is P/rollout/state (its ModRevision 0 when absent).
	rollout EtcdRollout
}

// applyPageSize is how many keys one read of a generation returns.
const applyPageSize = 10000

// readApplyState reads current, applied and the current generation at one
// revision: the revision of the first read, which every page names.
func readApplyState(ctx context.Context, cli *clientv3.Client, keys applyKeys) (applyState, error) {
	tr, err := cli.Txn(ctx).Then(clientv3.OpGet(keys.current()), clientv3.OpGet(keys.applied()), clientv3.OpGet(keys.rollout())).Commit()
	if err != nil {
		return applyState{}, fmt.Errorf("apply: reading %s: %w", keys.current(), err)
	}
	st := applyState{rev: tr.Header.Revision, values: make(map[string][]byte)}
	if kvs := tr.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		g, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
		if err != nil || g < 0 {
			return applyState{}, fmt.Errorf("apply: %s holds %q, not a generation number", keys.current(), kvs[0].Value)
		}
		st.current, st.gen, st.currentMod = true, g, kvs[0].ModRevision
	}
	if kvs := tr.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		st.appliedMod = kvs[0].ModRevision
	}
	if kvs := tr.Responses[2].GetResponseRange().GetKvs(); len(kvs) > 0 {
		r, err := ParseEtcdRollout(kvs[0].Value, kvs[0].ModRevision)
		if err != nil {
			return applyState{}, fmt.Errorf("apply: %s: %w", keys.rollout(), err)
		}
		st.rollout = r
	}
	if !st.current {
		return st, nil
	}
	gp := keys.gen(st.gen)
	end := clientv3.GetPrefixRangeEnd(gp)
	for from := gp; ; {
		r, err := cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithRev(st.rev), clientv3.WithLimit(applyPageSize))
		if err != nil {
			return applyState{}, fmt.Errorf("apply: reading %s at revision %d: %w", gp, st.rev, err)
		}
		for _, kv := range r.Kvs {
			st.values[strings.TrimPrefix(string(kv.Key), gp)] = kv.Value
		}
		if !r.More || len(r.Kvs) == 0 {
			return st, nil
		}
		from = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

// applyWrite writes one apply's change.
type applyWrite struct {
	cli  *clientv3.Client
	keys applyKeys
	held applyState
	lim  txnLimits
	opts ApplyOptions
	diff applyDiff
	// rollout is the value of P/rollout/state the flip writes (nil: none).
	rollout []byte
}

// unchanged are the compares that hold while nobody has applied nor switched
// generations since the read: current, applied and the rollout state have the
// ModRevision read (0: still absent). A compare over a key range cannot see a
// deleted key: applied, written by every apply, is what two applies meet on;
// the rollout state is what an apply and a rollout's decisions meet on.
func (w applyWrite) unchanged() []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(w.keys.current()), "=", w.held.currentMod),
		clientv3.Compare(clientv3.ModRevision(w.keys.applied()), "=", w.held.appliedMod),
		clientv3.Compare(clientv3.ModRevision(w.keys.rollout()), "=", w.held.rollout.ModRevision),
	}
}

// genUnchanged is the compare that holds while no key of the current
// generation was written since the read.
func (w applyWrite) genUnchanged() clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(w.keys.gen(w.held.gen)), "<", w.held.rev+1).WithPrefix()
}

// appliedValue is what <prefix>/applied holds after this apply.
func (w applyWrite) appliedValue(gen int64) string {
	b, _ := json.Marshal(struct {
		At         time.Time `json:"at"`
		By         string    `json:"by"`
		Generation int64     `json:"generation"`
		Summary    string    `json:"summary"`
	}{time.Now().UTC(), w.opts.By, gen, w.diff.summary()})
	return string(b)
}

// ops turns applyOps into etcd operations under a generation.
func (w applyWrite) ops(gen int64, ops []applyOp) []clientv3.Op {
	gp := w.keys.gen(gen)
	out := make([]clientv3.Op, 0, len(ops)+applyTxnReserveOps)
	for _, o := range ops {
		if o.del {
			out = append(out, clientv3.OpDelete(gp+o.key))
		} else {
			out = append(out, clientv3.OpPut(gp+o.key, string(o.value)))
		}
	}
	return out
}

// inPlace writes the change in the current generation in one guarded txn.
func (w applyWrite) inPlace(ctx context.Context, ops []applyOp) (int64, error) {
	cmps := append(w.unchanged(), w.genUnchanged())
	then := append(w.ops(w.held.gen, ops), clientv3.OpPut(w.keys.applied(), w.appliedValue(w.held.gen)))
	r, err := w.cli.Txn(ctx).If(cmps...).Then(then...).Commit()
	if err != nil {
		return 0, fmt.Errorf("apply: writing generation %d: %w: nothing was applied", w.held.gen, err)
	}
	if !r.Succeeded {
		return 0, fmt.Errorf("apply: generation %d was read at revision %d: %w", w.held.gen, w.held.rev, ErrApplyConflict)
	}
	return r.Header.Revision, nil
}

// newGeneration writes the directory whole into generation gen, then makes it
// current. It first claims the prefix with the staging key, under a lease
// kept alive while it writes; every later txn holds only while the claim is
// its own, so two applies never write one generation together. On failure it
// deletes what it wrote.
func (w applyWrite) newGeneration(ctx context.Context, gen int64, batches [][]applyOp) (int64, error) {
	ttl := w.opts.StagingTTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	lease, err := w.cli.Grant(ctx, int64(max(ttl/time.Second, 1)))
	if err != nil {
		return 0, fmt.Errorf("apply: a lease for %s: %w: nothing was applied", w.keys.staging(), err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	alive, err := w.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return 0, fmt.Errorf("apply: keeping the lease of %s: %w: nothing was applied", w.keys.staging(), err)
	}
	go func() {
		for range alive { // drained, or the client warns of a full queue
		}
	}()
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = w.cli.Revoke(rctx, lease.ID) // the staging key goes with it, if still there
	}()

	// The claim: nobody stages, nobody applied since the read. A generation
	// left over by an apply that died (its lease expired) is deleted here.
	stagingValue, _ := json.Marshal(struct {
		Generation int64     `json:"generation"`
		By         string    `json:"by"`
		Since      time.Time `json:"since"`
	}{gen, w.opts.By, time.Now().UTC()})
	claim := append(w.unchanged(), clientv3.Compare(clientv3.CreateRevision(w.keys.staging()), "=", 0))
	r, err := w.cli.Txn(ctx).If(claim...).
		Then(clientv3.OpPut(w.keys.staging(), string(stagingValue), clientv3.WithLease(lease.ID)),
			clientv3.OpDelete(w.keys.gen(gen), clientv3.WithPrefix())).
		Else(clientv3.OpGet(w.keys.staging())).Commit()
	if err != nil {
		return 0, fmt.Errorf("apply: claiming %s: %w: nothing was applied", w.keys.staging(), err)
	}
	if !r.Succeeded {
		if kvs := r.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			return 0, fmt.Errorf("apply: another apply is writing a generation (%s = %s): %w", w.keys.staging(), kvs[0].Value, ErrApplyConflict)
		}
		return 0, fmt.Errorf("apply: generation %d was read at revision %d: %w", w.held.gen, w.held.rev, ErrApplyConflict)
	}
	claimRev := r.Header.Revision
	mine := clientv3.Compare(clientv3.ModRevision(w.keys.staging()), "=", claimRev)

	fail := func(err error) (int64, error) {
		// Delete what was written, if the claim is still this apply's: with
		// a context of its own, as ctx may be what ended.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = w.cli.Txn(cctx).If(mine).Then(
			clientv3.OpDelete(w.keys.gen(gen), clientv3.WithPrefix()),
			clientv3.OpDelete(w.keys.staging())).Commit()
		return 0, err
	}
	guard := append(w.unchanged(), mine)
	for i, b := range batches {
		r, err := w.cli.Txn(ctx).If(guard...).Then(w.ops(gen, b)...).Commit()
		if err != nil {
			return fail(fmt.Errorf("apply: writing generation %d (txn %d of %d): %w: nothing was applied", gen, i+1, len(batches), err))
		}
		if !r.Succeeded {
			return fail(fmt.Errorf("apply: writing generation %d (txn %d of %d): %w", gen, i+1, len(batches), ErrApplyConflict))
		}
		if w.opts.afterBatch != nil {
			w.opts.afterBatch(ctx, i+1)
		}
	}

	// The flip: one txn makes the new generation current, guarded as the
	// in-place write is, and by the claim.
	flip := guard
	if w.held.current {
		flip = append(flip, w.genUnchanged())
	}
	flipOps := []clientv3.Op{
		clientv3.OpPut(w.keys.current(), strconv.FormatInt(gen, 10)),
		clientv3.OpPut(w.keys.applied(), w.appliedValue(gen)),
		clientv3.OpDelete(w.keys.staging()),
	}
	if w.rollout != nil {
		flipOps = append(flipOps, clientv3.OpPut(w.keys.rollout(), string(w.rollout)))
	}
	r, err = w.cli.Txn(ctx).If(flip...).Then(flipOps...).Commit()
	if err != nil {
		// The flip may have been applied even so (a timeout): whether it was
		// is read back rather than guessed.
		if cur, gerr := w.cli.Get(context.WithoutCancel(ctx), w.keys.current()); gerr == nil && len(cur.Kvs) > 0 &&
			string(cur.Kvs[0].Value) == strconv.FormatInt(gen, 10) && cur.Kvs[0].ModRevision > claimRev {
			return cur.Kvs[0].ModRevision, nil
		}
		return fail(fmt.Errorf("apply: making generation %d current: %w: nothing was applied", gen, err))
	}
	if !r.Succeeded {
		return fail(fmt.Errorf("apply: making generation %d current (read generation %d at revision %d): %w", gen, w.held.gen, w.held.rev, ErrApplyConflict))
	}
	return r.Header.Revision, nil
}
