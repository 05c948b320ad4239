package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
	"github.com/leanxds/leanxds/stream/machine"
)

// Options configure a Manager.
type Options struct {
	// Logger receives the stages, decisions and the NACKs that caused a
	// rollback; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock of the times in Status; nil means time.Now. Windows
	// are measured on the monotonic clock whatever it says.
	Now func() time.Time
	// OnChange is called after every change of the state MarshalState
	// returns (a persister's trigger). It is called without the Manager's
	// lock: it may call MarshalState.
	OnChange func()
	// Shared, when set, keeps the state where replicas share it (see Shared);
	// nil keeps it in this process.
	Shared Shared
}

// maxEvents bounds Status.Events: the oldest go first.
const maxEvents = 64

// Manager runs the rollouts of one store, one at a time. It is the
// stream.Router of the server of that store: set it in
// stream.Options.Router, then Attach the server. Run drives the stages. It is
// a prometheus.Collector of its metrics.
type Manager struct {
	st    *store.Store
	opts  Options
	log   *slog.Logger
	types []string

	// srv is the server whose streams are woken and counted (Attach).
	srv atomic.Pointer[stream.Server]
	// routes is what View serves, replaced whole on every change.
	routes atomic.Pointer[table]
	// stageMu serialises Stage calls, whose commits run outside mu.
	stageMu sync.Mutex

	mu sync.Mutex
	// cur is the running or most recent rollout; nil when there was none.
	cur *Rollout
	// pending routes every scope while a Stage commit runs (see table.other).
	pending *scopeRoute
	// staging is what the state says of a Stage commit under way (see
	// state.Staging); nil when none runs, or with Options.Shared.
	staging *staging
	// gen counts the changes of the state: a stage decision made from an
	// older state is dropped.
	gen uint64
	// changed is closed and replaced on every change (Rollout.Wait).
	changed chan struct{}
	// kick tells Run the state changed.
	kick chan struct{}
	// dirty: the state changed since OnChange was last called.
	dirty bool
	// sharedVersion is the version of the shared state this process last
	// loaded or saved (Options.Shared).
	sharedVersion int64
	// sharedBehind is the version of a shared state newer than
	// sharedVersion that was loaded but not adopted, as a Stage's commit was
	// running or the store did not hold its target yet; Run loads it again
	// after the next commit. 0 when none.
	sharedBehind int64
	// counters for the metrics.
	transitions map[string]uint64
	nacks       uint64
	rollbacks   uint64

	descs descs
}

// Rollout is one staged change.
type Rollout struct {
	m *Manager
	// st is what Status reports; guarded by m.mu, as every field below.
	st Status
	// matchers are the plan's stages compiled, one per stage.
	matchers []matcher
	// needNode: a stage reads node metadata, not only ids.
	needNode bool
	// bases and baseViews are, per scope, the revision and view of the
	// content served to the nodes no stage selects yet.
	bases     map[string]uint64
	baseViews map[string]store.View
	// releases let the store forget the bases (store.Hold).
	releases []func()
	// routing: View routes the rollout's scopes (it runs, is held, or is
	// being rolled back); serving is the stage whose nodes get the target,
	// -1 for none (a rollback putting the base back).
	routing bool
	serving int
	// stageStart is when the current stage's window began (monotonic).
	stageStart time.Time
	// seen are the nodes of the current stage seen connected during it, by
	// id, with their scope (at most maxSeen): one that is gone (it may have
	// crashed on the target) is pending, not absent, so that a stage whose
	// nodes all went away is not taken for one that has none. Kept in the
	// state.
	seen map[string]string
	// served are the nodes View served the target during the current
	// stage (buildTable makes it anew for each stage and target): Run adds
	// them to seen, so a canary that crashed on the target before Run first
	// looked at the stage is gone, not absent.
	served *servedSet
}

// servedSet is the nodes View served the target of one stage of a rollout:
// a node already in it costs a lock-free lookup; within maxSeen nodes and
// maxSeenName bytes of id and scope each, like Rollout.seen.
type servedSet struct {
	stage  int
	target uint64
	ids    sync.Map // node id → scope
	mu     sync.Mutex
	n      int
}

func (s *servedSet) add(id, scope string) {
	if _, ok := s.ids.Load(id); ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids.Load(id); ok || !remember(s.n, id, scope) {
		return
	}
	s.ids.Store(id, scope)
	s.n++
}

// maxSeen bounds Rollout.seen: past it, the nodes a stage first sees are not
// remembered, and one of them that disconnects leaves the stage as it did
// before (it is not counted once gone). A stage of more nodes is decided by
// the nodes connected at each look. Node ids and scopes are the clients':
// a node whose id and scope together are longer than maxSeenName bytes is
// not remembered either, so the set (and the state) holds at most about
// 5 MiB.
const (
	maxSeen     = 10_000
	maxSeenName = 512
)

// remember reports whether a node of id and scope may be added to a seen
// set of n nodes.
func remember(n int, id, scope string) bool {
	return n < maxSeen && len(id)+len(scope) <= maxSeenName
}

// New returns a Manager of st's rollouts. Set it as the stream.Router of the
// server of st, Attach that server, and Run it.
func New(st *store.Store, opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{
		st:          st,
		opts:        opts,
		log:         opts.Logger,
		types:       servedTypes(),
		changed:     make(chan struct{}),
		kick:        make(chan struct{}, 1),
		transitions: map[string]uint64{},
		descs:       newDescs(),
	}
}

// Attach gives the Manager the server whose streams it wakes when it changes
// the view some nodes are served, and whose nodes' ACKs and NACKs decide the
// stages. The server must have the Manager as its Router.
func (m *Manager) Attach(srv *stream.Server) { m.srv.Store(srv) }

// Status returns the running or most recent rollout's status; false when
// there was none. For a rollout that runs or is held, Applied is where the
// current stage's nodes connected to this process stand now.
func (m *Manager) Status() (Status, bool) {
	m.mu.Lock()
	if m.cur == nil {
		m.mu.Unlock()
		return Status{}, false
	}
	st := m.cur.statusLocked()
	j := m.jobLocked(true)
	m.mu.Unlock()
	if srv := m.srv.Load(); j != nil && srv != nil {
		a := srv.Applied(j.target, j.hint)
		st.Applied = j.filter(&a, nodeLookup(srv))
		j.withGone(&st.Applied) // j's seen is its own copy
	}
	return st, true
}

// Status returns the rollout's status now.
func (r *Rollout) Status() Status {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.statusLocked()
}

func (r *Rollout) statusLocked() Status {
	s := r.st
	s.Plan.Stages = slices.Clone(s.Plan.Stages)
	s.Scopes = slices.Clone(s.Scopes)
	s.Events = slices.Clone(s.Events)
	s.Applied.Nodes = slices.Clone(s.Applied.Nodes)
	return s
}

// Wait waits until the rollout is promoted, rolled back, held or superseded,
// or ctx ends; it returns its status then, with ctx's error if it ended
// first.
func (r *Rollout) Wait(ctx context.Context) (Status, error) {
	m := r.m
	for {
		m.mu.Lock()
		st, ch := r.statusLocked(), m.changed
		m.mu.Unlock()
		if st.Phase != Running {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// active returns the rollout that runs or is held; nil when none does.
func (m *Manager) activeLocked() *Rollout {
	if r := m.cur; r != nil && (r.st.Phase == Running || r.st.Phase == Held) {
		return r
	}
	return nil
}

// Stage rolls out the change commit makes (the caller's commit to the
// Manager's store) by plan. It pins the store's view before the commit as
// the base, runs commit, and starts the first stage with the scopes the
// commit changed: from then on the nodes of those scopes that the stage
// selects are served the new content, the others the base. While commit
// runs, only the first stage's nodes can be served what it commits.
//
// A commit that changes nothing starts no rollout: Stage returns a nil
// Rollout and no error. A commit error is returned as it is.
//
// A Stage while another rollout runs or is held supersedes it: that one ends
// Superseded, and the new one starts at its first stage with the union of
// both's scopes and the older one's bases (the last content every node ran),
// so content no stage has tested never goes past the first stage. A
// rollout promoted while commit runs is not taken over: every node runs its
// content, which is then the base.
//
// Until commit returns, the state (MarshalState, OnChange) names the commit
// under way and its base, so that a snapshot of the store taken before the
// state names the new rollout restores as that rollout (RestoreState). A
// commit that panics leaves no route behind; the panic goes on.
//
// source names the change in logs and the rollout's events. Stage calls are
// serialised; commit must not call Stage itself.
func (m *Manager) Stage(ctx context.Context, plan Plan, source string, commit func() (store.Result, error)) (*Rollout, error) {
	plan, err := plan.Normalized()
	if err != nil {
		return nil, err
	}
	matchers, needNode := compileStages(plan)
	m.stageMu.Lock()
	defer m.stageMu.Unlock()

	m.mu.Lock()
	pre := m.st.View()
	// The bases of a rollout running now are those of the next: taken now,
	// as it may end (rolled back, promoted) while commit runs.
	old := m.activeLocked()
	var oldBases map[string]uint64
	var oldViews map[string]store.View
	if old != nil {
		oldBases, oldViews = old.bases, old.baseViews
	}
	m.pending = pendingRoute(pre, matchers[:1], m.types)
	// The first stage's nodes served the commit while it runs are the new
	// rollout's first seen: one may crash on it before Stage returns.
	served := &servedSet{}
	m.pending.served = served
	m.installLocked()
	if m.opts.Shared == nil {
		// The state says a staged commit is under way from pre before the
		// commit can be persisted (see state.Staging): OnChange now.
		m.staging = &staging{Base: pre.Revision(), Plan: plan, Source: source, Bases: oldBases}
		m.dirty = true
	}
	m.unlock()

	res, err := m.runCommit(commit)

	m.mu.Lock()
	defer m.unlock()
	m.pending = nil
	if m.sharedBehind != 0 {
		// A shared state put off until the store holds its target, which
		// commit may have brought: Run loads it again.
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	if m.staging != nil {
		m.staging = nil
		m.dirty = true // OnChange again, with the rollout or without it
	}
	if old != nil && old.st.Phase == Promoted {
		// Promoted while commit ran: every node of its scopes runs its
		// target, which pre holds; its bases would send them back.
		oldBases, oldViews = nil, nil
	}
	post := m.st.View()
	if post.Revision() != pre.Revision()+1 || err != nil || !res.Changed() {
		// Commits of others during ours may have been routed to pre.
		defer m.wake("")
	}
	if err != nil || !res.Changed() {
		m.installLocked()
		return nil, err
	}

	now := m.opts.Now()
	served.target = res.Revision // stage 0; not read before r is published
	r := &Rollout{m: m, matchers: matchers, needNode: needNode,
		bases: map[string]uint64{}, baseViews: map[string]store.View{},
		routing: true, stageStart: time.Now(), served: served}
	scopes := res.Scopes
	for s, b := range oldBases {
		r.bases[s], r.baseViews[s] = b, oldViews[s]
		scopes = append(scopes, s)
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	for _, s := range scopes {
		if _, ok := r.bases[s]; !ok {
			r.bases[s], r.baseViews[s] = pre.Revision(), pre
		}
		if release, err := m.st.Hold(s, r.bases[s]); err != nil {
			m.log.Warn("rollout: the store cannot keep the base", "scope", s, "revision", r.bases[s], "err", err)
		} else {
			r.releases = append(r.releases, release)
		}
	}
	base := pre.Revision()
	for _, b := range r.bases {
		base = min(base, b)
	}
	r.st = Status{
		ID:             fmt.Sprintf("r%d", res.Revision),
		Phase:          Running,
		Plan:           plan,
		Base:           base,
		Target:         res.Revision,
		Scopes:         scopes,
		StartedAt:      now,
		StageStartedAt: now,
	}
	if cur := m.cur; cur != old && cur != nil && cur.st.ID == r.st.ID {
		// The shared state named this very rollout while commit ran (another
		// replica staged the same change first) and was adopted: it stands
		// as that state says (a stage passed, rolled back), not restarted,
		// and nothing is saved over it.
		m.cur = m.joinLocked(r, cur)
		m.installLocked()
		m.wake(scopes...)
		m.gen++
		close(m.changed)
		m.changed = make(chan struct{})
		return r, nil
	}
	if old != nil && (old.st.Phase == Running || old.st.Phase == Held) {
		old.st.Phase = Superseded
		m.eventLocked(old, "superseded", fmt.Sprintf("superseded by rollout %s (%s)", r.st.ID, source), nil)
		old.routing = false
		old.release()
	}
	m.cur = r
	m.eventLocked(r, "started", fmt.Sprintf("%s: revision %d of %s over base %d; stage 1 of %d (%s)",
		source, res.Revision, strings.Join(scopes, ", "), base, len(plan.Stages), plan.Stages[0].Name), nil)
	m.installLocked()
	m.wake(scopes...)
	m.changedLocked()
	return r, nil
}

// runCommit runs a Stage's commit. A commit that panics leaves no pending
// route behind: every node is served the store's current view again, and the
// panic goes on to Stage's caller.
func (m *Manager) runCommit(commit func() (store.Result, error)) (store.Result, error) {
	defer func() {
		if p := recover(); p != nil {
			m.mu.Lock()
			m.pending = nil
			if m.staging != nil {
				m.staging = nil
				m.dirty = true
			}
			m.installLocked()
			m.unlock()
			m.wake("")
			panic(p)
		}
	}()
	return commit()
}

// compileStages compiles a plan's selectors for View.
func compileStages(p Plan) (ms []matcher, needNode bool) {
	for _, st := range p.Stages {
		mt := compile(st.Select)
		needNode = needNode || mt.needsNode()
		ms = append(ms, mt)
	}
	return ms, needNode
}

// Promote starts the next stage of the running or held rollout now, or
// promotes it when it is at its last. ErrNoRollout when none runs.
func (m *Manager) Promote(reason string) error {
	reason = BoundDetail(reason) // kept in events and the state
	m.mu.Lock()
	defer m.unlock()
	r := m.activeLocked()
	if r == nil {
		return ErrNoRollout
	}
	m.eventLocked(r, "promote", "promoted by hand: "+reason, nil)
	m.advanceLocked(r)
	return nil
}

// Abort rolls the running or held rollout back now: every node of its scopes
// is served the base again, and the base is committed again. ErrNoRollout
// when none runs.
func (m *Manager) Abort(reason string) error {
	reason = BoundDetail(reason) // kept in events and the state
	m.mu.Lock()
	defer m.unlock()
	r := m.activeLocked()
	if r == nil {
		return ErrNoRollout
	}
	m.rollBackLocked(r, "abort", "aborted: "+reason, nil)
	return nil
}

// Rollback is the big red button: it commits, in one commit, every scope's
// content as it was at revision to (store.RollbackTo), so every node is sent
// exactly the version strings it held then, and ends the running rollout,
// if any (RolledBack). to == 0 means the running rollout's base, or, with
// none, the revision before the newest.
//
// With a rollout running or held, to must be at or before its base: a
// revision past it holds content no stage has fully tested, which ending the
// rollout would send to every node. Such a call is refused with an error and
// changes nothing; abort the rollout, or roll back to its base or earlier.
func (m *Manager) Rollback(to uint64, source string) (store.Result, error) {
	m.mu.Lock()
	defer m.unlock()
	r := m.activeLocked()
	if to == 0 {
		if r != nil {
			to = r.st.Base
		} else if to = m.st.View().Revision(); to > 0 {
			to--
		}
	}
	if r != nil && to > r.st.Base {
		return store.Result{}, fmt.Errorf("rollback to revision %d: rollout %s is running from base %d: abort it, or roll back to %d or earlier",
			to, r.st.ID, r.st.Base, r.st.Base)
	}
	res, err := m.st.RollbackTo(to, source)
	if err != nil {
		return res, err
	}
	m.rollbacks++
	if r != nil {
		r.st.Phase = RolledBack
		m.eventLocked(r, "rollback", fmt.Sprintf("rolled back to revision %d (%s)", to, source), nil)
		m.endLocked(r)
	}
	m.changedLocked()
	return res, nil
}

// installLocked publishes the routing table of the current rollout.
func (m *Manager) installLocked() {
	var t *table
	if r := m.cur; r != nil && r.routing {
		t = r.buildTable(m.types)
	}
	if m.pending != nil {
		if t == nil {
			t = &table{}
		}
		t.other = m.pending
	}
	m.routes.Store(t)
}

// wake makes the attached server's streams of scopes read their view again
// ("" wakes every stream).
func (m *Manager) wake(scopes ...string) {
	srv := m.srv.Load()
	if srv == nil {
		return
	}
	if len(scopes) > 0 {
		srv.Wake(scopes...)
	}
}

// MaxRejections bounds the rejections an event keeps (the first ones, by
// node id), and MaxDetail the bytes of each one's detail kept in events and
// the state (here and in rollout/etcdrollout's state in etcd): a client's error_detail is not bounded, and the state is
// written on every change. A longer detail is cut at a character boundary
// and marked "… (N bytes cut)".
const (
	MaxRejections = 16
	MaxDetail     = 1024
)

// BoundDetail cuts a NACK's detail to MaxDetail bytes, at a character
// boundary, marked "… (N bytes cut)".
func BoundDetail(s string) string { return machine.Cut(s, MaxDetail) }

// BoundRejection returns a copy of rej with its detail cut to MaxDetail
// bytes (BoundDetail); nil for nil. A node's error_detail is not bounded, and
// what carries it (fleet records in etcd, the state) must stay small.
func BoundRejection(rej *stream.Rejection) *stream.Rejection {
	if rej == nil {
		return nil
	}
	cp := *rej
	cp.Detail = BoundDetail(cp.Detail)
	return &cp
}

// BoundRejections returns the first MaxRejections of rs, each with its detail
// cut to MaxDetail bytes; rs is not modified.
func BoundRejections(rs []stream.Rejection) []stream.Rejection {
	if len(rs) > MaxRejections {
		rs = rs[:MaxRejections]
	}
	out := make([]stream.Rejection, len(rs))
	for i, r := range rs {
		r.Detail = BoundDetail(r.Detail)
		out[i] = r
	}
	return out
}

// eventLocked records an event of r, logs it and counts it.
func (m *Manager) eventLocked(r *Rollout, what, msg string, rejections []stream.Rejection) {
	if len(rejections) > 0 {
		rejections = BoundRejections(rejections)
	}
	ev := Event{At: m.opts.Now(), What: what, Stage: r.st.Stage, Message: msg, Rejections: rejections}
	if len(r.st.Events) >= maxEvents {
		r.st.Events = slices.Delete(r.st.Events, 0, len(r.st.Events)-maxEvents+1)
	}
	r.st.Events = append(r.st.Events, ev)
	m.transitions[what]++
	level := slog.LevelInfo
	switch what {
	case "nack", "timeout", "rollback_failed", "abort", "rollback":
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, "rollout "+what, "rollout", r.st.ID, "stage", r.st.Stage, "phase", r.st.Phase, "message", msg)
}

// changedLocked marks a change of the state: waiters and Run wake, OnChange
// and Shared are told once the lock is released.
func (m *Manager) changedLocked() {
	m.gen++
	close(m.changed)
	m.changed = make(chan struct{})
	m.dirty = true
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// unlock releases mu, then tells OnChange and Shared of a change.
func (m *Manager) unlock() {
	dirty := m.dirty
	m.dirty = false
	m.mu.Unlock()
	if !dirty {
		return
	}
	if m.opts.Shared != nil {
		m.saveShared(context.Background())
	}
	if m.opts.OnChange != nil {
		m.opts.OnChange()
	}
}

var _ stream.Router = (*Manager)(nil)
var _ prometheus.Collector = (*Manager)(nil)
