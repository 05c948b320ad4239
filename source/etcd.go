package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// Defaults of EtcdOptions.
const (
	DefaultEtcdProbeInterval  = time.Second
	DefaultEtcdRequestTimeout = 5 * time.Second
	DefaultEtcdMinBackoff     = 100 * time.Millisecond
	DefaultEtcdMaxBackoff     = 5 * time.Second
	DefaultEtcdListPage       = 1000
)

// EtcdOptions configure an Etcd source. The zero value is the defaults.
type EtcdOptions struct {
	// Logger receives what the source does; nil discards it.
	Logger *slog.Logger
	// Location is what Status shows as where the content comes from; "" is the
	// client's endpoints and the prefix as an etcd:// address.
	Location string
	// ProbeInterval is how often Run checks that etcd answers a read that
	// needs a quorum, to say in Status when it does not; 0 is 1 second.
	ProbeInterval time.Duration
	// RequestTimeout bounds each read (a page of a list, a probe); 0 is 5
	// seconds.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between two attempts to list or
	// watch after a failure, doubling from the first to the second; 0 is
	// 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// ListPage is how many keys a list reads per request; 0 is 1000.
	ListPage int64
	// OnReload, if not nil, is called with the outcome of each commit
	// (Applied or Unchanged, with the store's result) and once for each value
	// refused (Rejected). It is called with no lock of the source held.
	OnReload func(Outcome, store.Result)
	// Rollouts, if not nil, is told what each generation listed is to the
	// rollout P/rollout/state names, and the source loads a rollout's base
	// before its target (see EtcdRollouts): package rollout/etcdrollout.
	Rollouts EtcdRollouts
}

// Etcd is the Source of a prefix of etcd, laid out as docs/etcd.md says:
//
//	P/current                               the generation served (absent: "0")
//	P/gen/<gen>/<scope>/<message>/<name>    one resource, JSON as in a config file
//
// It lists the current generation at one etcd revision and commits it whole,
// then watches P/current and P/gen/ (EtcdWatchRange: not the fleet status
// under P/nodes/) from the next revision: all the events of one etcd revision
// become one store.Commit, in revision order, so that every replica goes
// through the same states. References to resources a scope does not hold are
// served, with a warning in Status, rather than refused: content written key by
// key passes through such states (leanxds apply checks them before it writes). A change of P/current lists the new generation at
// that revision and commits it whole. A value that is not a valid resource, or
// does not match its key, is refused (logged, counted, in Status) and the
// key's last good value stays served; the other keys are applied. When the
// watch is cancelled by a compaction the source lists again and reconciles.
// While etcd does not answer, the last good content is served, Status says so
// (Stale) and the source reconnects with backoff. With EtcdOptions.Rollouts,
// each list also reads P/rollout/state at its revision, and the base of a
// running rollout is committed before its target (see EtcdRollouts).
type Etcd struct {
	cli      *clientv3.Client
	prefix   string
	st       *store.Store
	log      *slog.Logger
	location string
	probe    time.Duration
	timeout  time.Duration
	backoff  [2]time.Duration
	page     int64
	onReload func(Outcome, store.Result)
	rollouts EtcdRollouts

	// syncing serialises lists and the application of events: what the store
	// holds, gen and rev change together. It guards the fields below.
	syncing sync.Mutex
	// listed is set once content was listed (a list committed, or refused as
	// empty over a restored snapshot).
	listed bool
	// keepRestored: see KeepRestored.
	keepRestored bool
	// gen is the generation the store holds, and rev the etcd revision the
	// store is equal to (0 before a list).
	gen string
	rev int64
	// invalid holds the keys of gen whose value is refused, and why.
	invalid map[string]refusedValue
	// dangling holds, per scope, the references its resources make to
	// resources it does not hold (store.View.Dangling), as Status.Warnings
	// lines: served, not refused (see Etcd).
	dangling map[string][]string

	mu     sync.Mutex
	status Status
}

// refusedValue is a value refused, at the revision it was written.
type refusedValue struct {
	modRev int64
	line   string
}

var _ Source = (*Etcd)(nil)

// NewEtcd returns the source of the keys under prefix (no trailing slash) of
// the cluster cli is a client of, committing to st. It reads nothing yet:
// Load and Run do. The caller closes cli once Run has returned.
func NewEtcd(cli *clientv3.Client, prefix string, st *store.Store, opts EtcdOptions) *Etcd {
	prefix = strings.TrimRight(prefix, "/")
	e := &Etcd{
		cli: cli, prefix: prefix, st: st, log: opts.Logger, location: opts.Location,
		probe: opts.ProbeInterval, timeout: opts.RequestTimeout,
		backoff: [2]time.Duration{opts.MinBackoff, opts.MaxBackoff}, page: opts.ListPage,
		onReload: opts.OnReload, rollouts: opts.Rollouts, gen: "0", invalid: map[string]refusedValue{}, dangling: map[string][]string{},
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.location == "" {
		e.location = EtcdAddress{Endpoints: cli.Endpoints(), Prefix: prefix}.String()
	}
	if e.probe <= 0 {
		e.probe = DefaultEtcdProbeInterval
	}
	if e.timeout <= 0 {
		e.timeout = DefaultEtcdRequestTimeout
	}
	if e.backoff[0] <= 0 {
		e.backoff[0] = DefaultEtcdMinBackoff
	}
	if e.backoff[1] <= 0 {
		e.backoff[1] = DefaultEtcdMaxBackoff
	}
	if e.page <= 0 {
		e.page = DefaultEtcdListPage
	}
	e.status = Status{Kind: KindEtcd, Location: e.location, Scopes: map[string]int{}}
	return e
}

// KeepRestored tells the source that the store holds a snapshot restored at
// start: until content is committed, a generation without a single key does
// not replace it (at start that is far more likely an empty or wrong prefix
// than a decision to serve nothing).
func (e *Etcd) KeepRestored() {
	e.syncing.Lock()
	e.keepRestored = true
	e.syncing.Unlock()
}

// Status returns how the content was last applied, and whether etcd answers.
func (e *Etcd) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Load lists the current generation at one revision and commits it whole,
// trying again with backoff while etcd does not answer, until ctx ends (the
// error is then the last failure). Values refused are not an error: they are
// in Status, and the rest is committed.
func (e *Etcd) Load(ctx context.Context) (store.Result, error) {
	wait := e.backoff[0]
	for {
		res, err := e.relist(ctx)
		if err == nil {
			return res, nil
		}
		if !sleep(ctx, wait) {
			return res, err
		}
		wait = min(2*wait, e.backoff[1])
	}
}

// Run keeps the store equal to the prefix until ctx ends, and returns nil
// then. It lists first if Load did not succeed, then watches from the revision
// after the one listed (see Etcd).
func (e *Etcd) Run(ctx context.Context) error {
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		e.probeLoop(ctx)
	}()
	defer func() { <-probeDone }()

	e.syncing.Lock()
	needList := !e.listed
	e.syncing.Unlock()
	wait := e.backoff[0]
	for ctx.Err() == nil {
		if needList {
			if _, err := e.relist(ctx); err != nil {
				if !sleep(ctx, wait) {
					break
				}
				wait = min(2*wait, e.backoff[1])
				continue
			}
			needList = false
		}
		progressed, err := e.watch(ctx)
		if ctx.Err() != nil {
			break
		}
		if progressed {
			wait = e.backoff[0]
		}
		if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, errListAgain) {
			e.log.Warn("etcd watch ended: listing again", "prefix", e.prefix, "err", err)
			needList = true
			continue // at once: the list is what catches up
		}
		e.log.Warn("etcd watch ended: watching again", "prefix", e.prefix, "err", err, "after", wait.String())
		if !sleep(ctx, wait) {
			break
		}
		wait = min(2*wait, e.backoff[1])
	}
	return nil
}

// errListAgain ends a watch whose events cannot be applied one by one: the
// source lists again.
var errListAgain = errors.New("listing again")

// watch watches the prefix from the revision after the store's until the
// watch ends, applying each revision's events as one commit. progressed is
// set if it applied anything. A compaction's error is rpctypes.ErrCompacted.
func (e *Etcd) watch(ctx context.Context) (progressed bool, err error) {
	e.syncing.Lock()
	from := e.rev + 1
	e.syncing.Unlock()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// Only current and gen/: the fleet status under nodes/ never wakes it.
	key, end := EtcdWatchRange(e.prefix)
	wch := e.cli.Watch(wctx, key, clientv3.WithRange(end), clientv3.WithRev(from),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return progressed, fmt.Errorf("%w: compacted at revision %d, the source was at %d", rpctypes.ErrCompacted, resp.CompactRevision, from-1)
		}
		if err := resp.Err(); err != nil {
			return progressed, err
		}
		if resp.IsProgressNotify() {
			// Every event of the watched range up to this revision has been
			// delivered: a watch started again later starts after it, not
			// at a revision the writes outside the range may have let etcd
			// compact.
			e.syncing.Lock()
			e.rev = max(e.rev, resp.Header.Revision)
			e.syncing.Unlock()
			continue
		}
		// One commit per etcd revision, in revision order (events arrive in it).
		evs := resp.Events
		for len(evs) > 0 {
			n := 1
			for n < len(evs) && evs[n].Kv.ModRevision == evs[0].Kv.ModRevision {
				n++
			}
			if err := e.applyRevision(ctx, evs[0].Kv.ModRevision, evs[:n]); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					return progressed, err
				}
				return progressed, fmt.Errorf("revision %d: %w", evs[0].Kv.ModRevision, err)
			}
			progressed = true
			evs = evs[n:]
		}
	}
	if err := ctx.Err(); err != nil {
		return progressed, err
	}
	return progressed, errors.New("the watch channel closed")
}

// applyRevision commits the events of one etcd revision.
func (e *Etcd) applyRevision(ctx context.Context, rev int64, evs []*clientv3.Event) error {
	e.syncing.Lock()
	defer e.syncing.Unlock()
	if rev <= e.rev {
		return nil // seen by a list already
	}
	current := EtcdCurrentKey(e.prefix)
	for _, ev := range evs {
		if string(ev.Kv.Key) != current {
			continue
		}
		gen := "0"
		if ev.Type == clientv3.EventTypePut {
			gen = string(ev.Kv.Value)
		}
		if gen != e.gen {
			e.log.Info("etcd generation switch", "prefix", e.prefix, "from", e.gen, "to", gen, "revision", rev)
			_, err := e.listGeneration(ctx, gen, rev)
			return err
		}
	}
	if e.keepRestored {
		// Nothing was committed over the restored snapshot yet: a change is
		// applied by listing the generation whole.
		for _, ev := range evs {
			if strings.HasPrefix(string(ev.Kv.Key), EtcdGenPrefix(e.prefix, e.gen)) {
				_, err := e.listGeneration(ctx, e.gen, rev)
				return err
			}
		}
		e.rev = rev
		return nil
	}

	var (
		changes []store.Change
		refused []string
		touched = map[string]bool{}
	)
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		scope, typeURL, name, ours, kerr := ParseEtcdResourceKey(e.prefix, e.gen, key)
		if !ours {
			continue // another generation, or not a resource
		}
		if ev.Type == clientv3.EventTypeDelete {
			delete(e.invalid, key)
			if kerr == nil {
				changes = append(changes, store.Delete(scope, typeURL, name))
				touched[scope] = true
			}
			continue
		}
		r, err := parseEtcdValue(key, typeURL, name, ev.Kv.Value, kerr)
		if err != nil {
			if e.refuse(key, ev.Kv.ModRevision, err) {
				refused = append(refused, key)
			}
			continue
		}
		delete(e.invalid, key)
		changes = append(changes, store.SetResource(scope, r))
		touched[scope] = true
	}
	res, err := e.st.CommitWith(store.CommitOptions{Source: e.label(e.gen, rev, "")}, changes...)
	if err != nil {
		// The values were validated: the store refusing them is a bug; listing
		// again is the way back to a known state.
		e.log.Error("etcd revision not committed: listing again", "prefix", e.prefix, "revision", rev, "err", err)
		return fmt.Errorf("%w: %v", errListAgain, err)
	}
	e.rev = rev
	if res.Changed() {
		e.checkDangling(slices.Collect(maps.Keys(touched)))
	}
	e.applied(res, len(refused), nil)
	return nil
}

// relist lists the current generation at the latest revision and commits it
// whole.
func (e *Etcd) relist(ctx context.Context) (store.Result, error) {
	e.syncing.Lock()
	defer e.syncing.Unlock()
	rctx, cancel := context.WithTimeout(ctx, e.timeout)
	resp, err := e.cli.Get(rctx, EtcdCurrentKey(e.prefix))
	cancel()
	if err != nil {
		e.unreachable(err)
		return store.Result{}, err
	}
	gen := "0"
	if len(resp.Kvs) > 0 {
		gen = string(resp.Kvs[0].Value)
	}
	// Compacted between the two reads (ErrCompacted): the caller tries again.
	return e.listGeneration(ctx, gen, resp.Header.Revision)
}

// label is how a commit of generation gen at etcd revision rev is named in
// the store's history, with why ("" for none).
func (e *Etcd) label(gen string, rev int64, why string) string {
	l := fmt.Sprintf("etcd gen %s, revision %d", gen, rev)
	if why != "" {
		l += ": " + why
	}
	return l
}

// listCommit lists generation gen at revision rev and commits it whole: every
// scope the store or the generation holds is replaced. A refused value keeps
// the store's entry for its resource, if any; why says in the store's history
// why it is committed ("" for nothing to say). Guarded by syncing.
func (e *Etcd) listCommit(ctx context.Context, gen string, rev int64, why string) (store.Result, error) {
	if gen == "" || strings.Contains(gen, "/") {
		err := fmt.Errorf("%s holds %q: want a generation id (a decimal number)", EtcdCurrentKey(e.prefix), gen)
		e.refuse(EtcdCurrentKey(e.prefix), rev, err)
		e.rev = rev
		e.applied(store.Result{Revision: e.st.View().Revision()}, 1, nil)
		return store.Result{}, nil
	}
	kvs, err := e.list(ctx, EtcdGenPrefix(e.prefix, gen), rev)
	if err != nil {
		if !errors.Is(err, rpctypes.ErrCompacted) {
			e.unreachable(err)
		}
		return store.Result{}, err
	}
	e.setStale("")
	view := e.st.View()
	scopes := map[string]bool{}
	for _, s := range view.Scopes() {
		scopes[s] = true
	}
	var refused int
	sets := map[string][]store.Change{}
	invalid := map[string]refusedValue{}
	// A key unchanged since the revision the store is equal to holds what the
	// store holds: its entry is kept as is, without parsing the value again
	// (a list again after a compaction or a reconnection parses only what
	// changed).
	same := gen == e.gen && e.listed && !e.keepRestored
	kept := make([]*store.Entry, len(kvs))
	for i, kv := range kvs {
		scope, typeURL, name, _, kerr := ParseEtcdResourceKey(e.prefix, gen, string(kv.Key))
		if _, refused := e.invalid[string(kv.Key)]; same && kerr == nil && kv.ModRevision <= e.rev && !refused {
			kept[i] = view.Table(scope, typeURL).Get(name)
		}
	}
	parsed := parseValues(e.prefix, gen, kvs, kept)
	for i, kv := range kvs {
		key := string(kv.Key)
		scope, typeURL, name, _, kerr := ParseEtcdResourceKey(e.prefix, gen, key)
		if ent := kept[i]; ent != nil {
			scopes[scope] = true
			sets[scope] = append(sets[scope], store.SetEncoded(scope, typeURL, name, ent.Body))
			continue
		}
		r, err := parsed[i].r, parsed[i].err
		if err != nil {
			if prev, ok := e.invalid[key]; !ok || prev.modRev != kv.ModRevision {
				refused++
				e.logRefused(key, err)
			}
			invalid[key] = refusedValue{modRev: kv.ModRevision, line: refusedLine(key, err)}
			if kerr == nil {
				if ent := view.Table(scope, typeURL).Get(name); ent != nil {
					scopes[scope] = true
					sets[scope] = append(sets[scope], store.SetEncoded(scope, typeURL, name, ent.Body)) // the last good value
				}
			}
			continue
		}
		scopes[scope] = true
		sets[scope] = append(sets[scope], store.SetResource(scope, r))
	}
	if e.keepRestored && len(kvs) == 0 {
		e.gen, e.rev, e.invalid, e.listed = gen, rev, invalid, true
		e.update(func(s *Status) {
			s.LastAttempt = time.Now()
			s.Generation, s.EtcdRevision = gen, rev
			s.Errors = []string{fmt.Sprintf("%s holds no key: the snapshot restored at start is served until it holds some", EtcdGenPrefix(e.prefix, gen))}
		})
		e.log.Warn("etcd holds nothing to serve: the restored snapshot is served until it does", "prefix", e.prefix, "generation", gen, "revision", rev)
		return store.Result{}, nil
	}
	var changes []store.Change
	for _, s := range slices.Sorted(maps.Keys(scopes)) {
		changes = append(changes, store.ReplaceScope(s))
		changes = append(changes, sets[s]...)
	}
	res, err := e.st.CommitWith(store.CommitOptions{Source: e.label(gen, rev, why)}, changes...)
	if err != nil {
		e.log.Error("etcd content not committed", "prefix", e.prefix, "generation", gen, "revision", rev, "err", err)
		e.update(func(s *Status) {
			s.LastAttempt = time.Now()
			s.Errors = ErrorLines(err)
		})
		return res, err
	}
	e.gen, e.rev, e.invalid, e.listed, e.keepRestored = gen, rev, invalid, true, false
	e.dangling = map[string][]string{}
	e.checkDangling(e.st.View().Scopes())
	e.applied(res, refused, kvs)
	return res, nil
}

// checkDangling works out the dangling references of scopes, as the store
// holds them now; they are warnings (Status.Warnings), logged when they
// appear. Its cost is O(resources of each scope). Guarded by syncing.
func (e *Etcd) checkDangling(scopes []string) {
	view := e.st.View()
	for _, scope := range scopes {
		var lines []string
		for _, d := range view.Dangling(scope) {
			lines = append(lines, fmt.Sprintf("scope %q: %s", scope, d))
		}
		if len(lines) > len(e.dangling[scope]) {
			e.log.Warn("dangling references: served, clients wait for what is missing", "scope", scope, "references", lines)
		}
		if len(lines) == 0 {
			delete(e.dangling, scope)
		} else {
			e.dangling[scope] = lines
		}
	}
}

// parsedValue is a value parsed by parseValues.
type parsedValue struct {
	r   resources.Resource
	err error
}

// parseValues parses the values of kvs, but for those whose entry is kept
// (kept[i] not nil), on every CPU: listing many keys is mostly parsing them.
func parseValues(prefix, gen string, kvs []*mvccpb.KeyValue, kept []*store.Entry) []parsedValue {
	out := make([]parsedValue, len(kvs))
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), 1+len(kvs)/256) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(kvs) {
					return
				}
				if kept[i] != nil {
					continue
				}
				key := string(kvs[i].Key)
				_, typeURL, name, _, kerr := ParseEtcdResourceKey(prefix, gen, key)
				out[i].r, out[i].err = parseEtcdValue(key, typeURL, name, kvs[i].Value, kerr)
			}
		})
	}
	wg.Wait()
	return out
}

// list reads every key under p at revision rev, a page at a time.
func (e *Etcd) list(ctx context.Context, p string, rev int64) ([]*mvccpb.KeyValue, error) {
	end := clientv3.GetPrefixRangeEnd(p)
	var out []*mvccpb.KeyValue
	from := p
	for {
		rctx, cancel := context.WithTimeout(ctx, e.timeout)
		resp, err := e.cli.Get(rctx, from, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(e.page))
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// parseEtcdValue reads the value of key as one resource of the key's type and
// name. kerr is the key's own error, if any.
func parseEtcdValue(key, typeURL, name string, value []byte, kerr error) (resources.Resource, error) {
	if kerr != nil {
		return resources.Resource{}, kerr
	}
	rs, err := resources.Parse("value.json", value)
	if err != nil {
		for _, le := range flatten(err) {
			if le, ok := le.(*resources.LoadError); ok {
				le.File, le.Index, le.Line = key, 0, 0
			}
		}
		return resources.Resource{}, err
	}
	switch {
	case len(rs) != 1:
		return resources.Resource{}, fmt.Errorf("%s: the value holds %d resources: want one", key, len(rs))
	case rs[0].TypeURL != typeURL:
		return resources.Resource{}, fmt.Errorf("%s: the value is a %s (%s), the key says %s", key, protocol.Short(rs[0].TypeURL), rs[0].TypeURL, typeURL)
	case rs[0].Name != name:
		return resources.Resource{}, fmt.Errorf("%s: the value names the resource %q, the key %q", key, rs[0].Name, name)
	}
	return rs[0], nil
}

func refusedLine(key string, err error) string {
	line := strings.Join(ErrorLines(err), "; ")
	if !strings.HasPrefix(line, key) {
		line = key + ": " + line
	}
	return line
}

// refuse records a value refused; it returns false if it was refused already
// (the same write seen again). Guarded by syncing.
func (e *Etcd) refuse(key string, modRev int64, err error) bool {
	if prev, ok := e.invalid[key]; ok && prev.modRev == modRev {
		return false
	}
	e.invalid[key] = refusedValue{modRev: modRev, line: refusedLine(key, err)}
	e.logRefused(key, err)
	return true
}

func (e *Etcd) logRefused(key string, err error) {
	e.log.Error("etcd value refused: the last good value of the key is still served", "key", key, "error", strings.Join(ErrorLines(err), "; "))
}

// applied records a commit, and refused values refused by it. kvs, for a
// list, are the keys listed. Guarded by syncing.
func (e *Etcd) applied(res store.Result, refused int, kvs []*mvccpb.KeyValue) {
	now := time.Now()
	view := e.st.View()
	scopes := map[string]int{}
	total := 0
	for _, s := range view.Scopes() {
		n := 0
		for _, t := range view.Tables(s) {
			n += t.Len()
		}
		scopes[s] = n
		total += n
	}
	var lines, warnings []string
	for _, k := range slices.Sorted(maps.Keys(e.invalid)) {
		lines = append(lines, e.invalid[k].line)
	}
	for _, scope := range slices.Sorted(maps.Keys(e.dangling)) {
		warnings = append(warnings, e.dangling[scope]...)
	}
	e.update(func(s *Status) {
		s.Loaded = true
		s.LastAttempt, s.LastApplied = now, now
		s.Revision = view.Revision()
		s.Generation, s.EtcdRevision = e.gen, e.rev
		s.Files, s.Scopes = total+len(e.invalid), scopes
		s.Rejected += refused
		s.Errors, s.Warnings = lines, warnings
		if refused > 0 {
			s.LastRejected = now
		}
	})
	if e.onReload != nil {
		for range refused {
			e.onReload(Rejected, store.Result{})
		}
		outcome := Unchanged
		if res.Changed() {
			outcome = Applied
		}
		e.onReload(outcome, res)
	}
	if res.Changed() {
		e.log.Info("etcd content applied", "prefix", e.prefix, "generation", e.gen, "etcd_revision", e.rev,
			"revision", res.Revision, "set", res.Set, "deleted", res.Deleted, "listed", kvs != nil, "refused", len(e.invalid))
	}
}

// probeLoop checks every probe interval that etcd answers a read that needs a
// quorum, and records in Status whether it does.
func (e *Etcd) probeLoop(ctx context.Context) {
	t := time.NewTicker(e.probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, min(e.timeout, 2*e.probe+time.Second))
		_, err := e.cli.Get(rctx, EtcdCurrentKey(e.prefix), clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.unreachable(err)
		} else {
			e.setStale("")
		}
	}
}

func (e *Etcd) unreachable(err error) {
	e.setStale("etcd unreachable: " + err.Error())
}

// setStale records that etcd does not answer, and why; "" records that it
// answers again.
func (e *Etcd) setStale(reason string) {
	was := ""
	e.update(func(s *Status) { was = s.setStale(reason, time.Now()) })
	switch {
	case reason != "" && was == "":
		e.log.Error("etcd does not answer: the last good config is served", "location", e.location, "reason", reason)
	case reason == "" && was != "":
		e.log.Info("etcd answers again", "location", e.location)
	}
}

// update changes the status: the new value replaces the old one whole, so
// that a Status handed out never changes.
func (e *Etcd) update(f func(*Status)) {
	e.mu.Lock()
	s := e.status
	f(&s)
	e.status = s
	e.mu.Unlock()
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
