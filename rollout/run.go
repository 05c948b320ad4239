package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/stream"
)

// errStateChanged ends a wait on the shared state: another replica changed
// it.
var errStateChanged = errors.New("the shared rollout state changed")

// Run drives the rollouts until ctx ends, and returns nil then: it waits for
// the nodes of each stage to ACK the target (stream.Server.WaitFor on the
// attached server, or Shared.Applied), starts the next stage, rolls back on
// NACKs, holds or rolls back when a window ends, and restarts a rollout at
// its first stage when a commit not made through Stage changes one of its
// scopes.
func (m *Manager) Run(ctx context.Context) error {
	w := m.st.NewWatcher()
	defer w.Close()
	var watching []string
	var changed <-chan struct{}
	if m.opts.Shared != nil {
		changed = m.opts.Shared.Changed(ctx)
		m.loadShared(ctx)
	}
	for {
		select {
		case <-m.kick: // the state is read again below
		default:
		}
		m.mu.Lock()
		behind := m.sharedBehind != 0
		m.mu.Unlock()
		if behind {
			m.loadShared(ctx) // a commit may have brought its target
		}
		m.mu.Lock()
		watching = m.watchLocked(w, watching)
		m.checkCommitsLocked()
		// A held stage is watched too, with no deadline: NACKs roll it back.
		job := m.jobLocked(true)
		if m.sharedBehind != 0 {
			// The shared state moved past what this store holds: a decision
			// from here would be about a rollout the others left.
			job = nil
		}
		m.unlock()
		if job == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-m.kick:
			case <-w.C:
			case <-changed:
				m.loadShared(ctx)
			}
			continue
		}

		wctx, cancel := context.WithCancel(ctx)
		if !job.held {
			wctx, cancel = context.WithDeadline(ctx, job.deadline)
		}
		stop := make(chan struct{})
		go func() {
			select {
			case <-m.kick:
			case <-w.C:
			case <-stop:
			}
			cancel()
		}()
		a, err := m.waitStage(wctx, job, changed)
		timedOut := !job.held && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(job.deadline)
		close(stop)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errStateChanged) {
			m.loadShared(ctx)
			continue
		}
		m.mu.Lock()
		m.decideLocked(job, a, err, timedOut)
		m.unlock()
	}
}

// watchJob is one wait for the nodes of a stage.
type waitJob struct {
	r        *Rollout
	gen      uint64
	id       string
	target   uint64
	scopes   []string
	sel      []matcher
	needNode bool
	maxNACKs int
	// held: the stage is held (a window ended): only NACKs decide it, and
	// the wait has no deadline.
	held     bool
	stage    int
	deadline time.Time
	// seen is the rollout's seen set when the job was made, with the nodes
	// the wait saw since (withGone); gone is how many of them the newest
	// look did not find.
	seen map[string]string
	gone int
	// served is the rollout's servedSet of the job's stage and target.
	served *servedSet
	// hint is what the server is asked for: the nodes of the one scope, and
	// the largest share, when the stages allow; the stage's nodes are then
	// picked exactly among them.
	hint stream.Selector
}

// jobLocked returns the wait for the current stage, nil when no rollout runs
// (or, with held, is held).
func (m *Manager) jobLocked(held bool) *waitJob {
	r := m.cur
	if r == nil || !(r.st.Phase == Running || held && r.st.Phase == Held) {
		return nil
	}
	stage := r.st.Stage
	j := &waitJob{r: r, gen: m.gen, id: r.st.ID, target: r.st.Target, scopes: r.st.Scopes,
		sel: r.matchers[:stage+1], needNode: r.needNode, maxNACKs: r.st.Plan.MaxNACKs,
		deadline: r.stageStart.Add(r.st.Plan.Window), held: r.st.Phase == Held, stage: stage,
		seen: maps.Clone(r.seen)}
	if sv := r.served; sv != nil && sv.stage == stage && sv.target == r.st.Target {
		j.served = sv
	}
	if len(r.st.Scopes) == 1 {
		j.hint.Scope = r.st.Scopes[0]
	}
	share := 0.0
	for _, st := range r.st.Plan.Stages[:stage+1] {
		s := st.Select
		if s.Scope != "" || len(s.IDs) > 0 || len(s.Metadata) > 0 || selectsAll(&s) {
			share = 0
			break
		}
		share = max(share, s.Percent)
	}
	j.hint.Percent = share
	return j
}

// inStage reports whether a node is one of the stage's.
func (j *waitJob) inStage(n *stream.NodeApplied, node func(id string) *corev3.Node) bool {
	if !slices.Contains(j.scopes, n.Scope) {
		return false
	}
	nd := &corev3.Node{Id: n.NodeID}
	if j.needNode {
		if full := node(n.NodeID); full != nil {
			nd = full
		}
	}
	return anyMatches(j.sel, n.Scope, nd)
}

// filter returns where the stage's nodes among a's stand.
func (j *waitJob) filter(a *stream.Applied, node func(id string) *corev3.Node) stream.Applied {
	out := stream.Applied{Revision: a.Revision}
	for i := range a.Nodes {
		n := &a.Nodes[i]
		if !j.inStage(n, node) {
			continue
		}
		out.Nodes = append(out.Nodes, *n)
		switch n.State {
		case stream.NodeACKed:
			out.ACKed++
		case stream.NodeNACKed:
			out.NACKed++
		default:
			out.Pending++
		}
	}
	return out
}

// withGone records the nodes of a (where the stage's nodes stand) as seen
// during the stage, and adds to it, as pending, the nodes seen during the
// stage that are not connected now: a canary that crashed on the target is
// gone, not done. It reports whether it saw a node not seen before.
func (j *waitJob) withGone(a *stream.Applied) (grew bool) {
	if j.seen == nil {
		j.seen = map[string]string{}
	}
	if j.served != nil {
		// The nodes View served the target: one may have gone before any
		// look listed it.
		j.served.ids.Range(func(k, v any) bool {
			id, scope := k.(string), v.(string)
			if !slices.Contains(j.scopes, scope) {
				return true // served while Stage's commit ran, of a scope it did not change
			}
			if _, ok := j.seen[id]; !ok && remember(len(j.seen), id, scope) {
				j.seen[id] = scope
				grew = true
			}
			return true
		})
	}
	present := make(map[string]bool, len(a.Nodes))
	for _, n := range a.Nodes {
		present[n.NodeID] = true
		if _, ok := j.seen[n.NodeID]; !ok && remember(len(j.seen), n.NodeID, n.Scope) {
			j.seen[n.NodeID] = n.Scope
			grew = true
		}
	}
	j.gone = 0
	for id, scope := range j.seen {
		if present[id] {
			continue
		}
		a.Nodes = append(a.Nodes, stream.NodeApplied{NodeID: id, Scope: scope, State: stream.NodePending})
		a.Pending++
		j.gone++
	}
	if j.gone > 0 {
		slices.SortFunc(a.Nodes, func(x, y stream.NodeApplied) int { return strings.Compare(x.NodeID, y.NodeID) })
	}
	return grew
}

// recordSeen keeps the nodes the job saw in its rollout's state, when the
// rollout is still at the job's stage and target.
func (m *Manager) recordSeen(j *waitJob) {
	m.mu.Lock()
	defer m.unlock()
	r := j.r
	if r != m.cur || !r.routing || r.st.ID != j.id || r.st.Stage != j.stage || r.st.Target != j.target {
		return
	}
	if r.seen == nil {
		r.seen = map[string]string{}
	}
	for id, scope := range j.seen {
		if _, ok := r.seen[id]; !ok && !remember(len(r.seen), id, scope) {
			continue
		}
		r.seen[id] = scope
	}
	if m.opts.Shared == nil {
		m.dirty = true // OnChange: the persister keeps it; no decision depends on it
	}
	// With Shared, it is saved with the next decision: a save for each node
	// seen would race the other replicas' for nothing.
}

// done reports whether a stage's standing decides it before its window ends:
// enough NACKs, or every node ACKed. A node that NACKed did not ACK: fewer
// NACKs than MaxNACKs keep the stage until its window ends. A stage none of
// whose nodes is connected is not decided before its window ends either: a
// process that has just restarted has no node yet.
//
// A held stage is decided by NACKs alone: it waits for Promote or Abort
// otherwise.
func (j *waitJob) done(a *stream.Applied) bool {
	return a.NACKed >= j.maxNACKs || !j.held && allACKed(a)
}

// allACKed reports whether the stage's nodes, one at least, all ACKed.
func allACKed(a *stream.Applied) bool { return a.ACKed > 0 && a.Pending == 0 && a.NACKed == 0 }

// nodeLookup returns the node of an id among the server's streams, reading
// them again only for an id it has not seen.
func nodeLookup(srv *stream.Server) func(id string) *corev3.Node {
	cache := map[string]*corev3.Node{}
	return func(id string) *corev3.Node {
		if n, ok := cache[id]; ok {
			return n
		}
		for _, s := range srv.Streams() {
			cache[s.NodeID] = s.Node
		}
		if _, ok := cache[id]; !ok {
			cache[id] = nil
		}
		return cache[id]
	}
}

// waitStage waits until the stage's nodes decide it or ctx ends.
func (m *Manager) waitStage(ctx context.Context, j *waitJob, changed <-chan struct{}) (stream.Applied, error) {
	if m.opts.Shared != nil {
		return m.waitShared(ctx, j, changed)
	}
	srv := m.srv.Load()
	if srv == nil {
		<-ctx.Done()
		return stream.Applied{Revision: j.target}, ctx.Err()
	}
	node := nodeLookup(srv)
	a, err := srv.WaitFor(ctx, j.target, j.hint, func(a *stream.Applied) bool {
		f := j.filter(a, node)
		if j.withGone(&f) {
			m.recordSeen(j)
		}
		return j.done(&f)
	})
	if err != nil && ctx.Err() == nil {
		m.log.Error("rollout: the server cannot tell who runs what; waiting for the window", "err", err)
		<-ctx.Done()
		err = ctx.Err()
	}
	f := j.filter(&a, node)
	if j.withGone(&f) {
		m.recordSeen(j)
	}
	return f, err
}

// Applied returns where this process's nodes of the current stage of the
// running or held rollout stand against its target; false when none runs or
// no server is attached. It is what a replica publishes for Shared.Applied.
func (m *Manager) Applied() (stream.Applied, bool) {
	m.mu.Lock()
	j := m.jobLocked(true)
	m.mu.Unlock()
	srv := m.srv.Load()
	if j == nil || srv == nil {
		return stream.Applied{}, false
	}
	a := srv.Applied(j.target, j.hint)
	return j.filter(&a, nodeLookup(srv)), true
}

// watchLocked makes w watch every table of the running rollout's scopes.
func (m *Manager) watchLocked(w interface {
	Watch(scope, typeURL string)
	Close()
}, watching []string) []string {
	var want []string
	if r := m.activeLocked(); r != nil {
		want = r.st.Scopes
	}
	if slices.Equal(want, watching) {
		return watching
	}
	w.Close()
	for _, s := range want {
		for _, u := range m.types {
			w.Watch(s, u)
		}
	}
	return slices.Clone(want)
}

// checkCommitsLocked restarts the running rollout at its first stage when a
// commit not made through Stage changed one of its scopes: its content has
// not been tested by any stage (View already serves it to the first stage
// alone).
func (m *Manager) checkCommitsLocked() {
	r := m.activeLocked()
	if r == nil || m.pending != nil {
		return
	}
	v := m.st.View()
	var changed []string
	for _, s := range r.st.Scopes {
		for _, u := range m.types {
			if v.Table(s, u).Revision() > r.st.Target {
				changed = append(changed, s)
				break
			}
		}
	}
	if len(changed) == 0 {
		return
	}
	r.st.Target = v.Revision()
	r.seen = r.seenOfFirstStage()
	r.st.Stage, r.serving = 0, 0
	r.st.Phase = Running
	r.st.StageStartedAt = m.opts.Now()
	r.stageStart = time.Now()
	r.st.Applied = stream.Applied{}
	m.eventLocked(r, "restart", fmt.Sprintf("a commit not made through the rollout changed %s: revision %d restarts at stage 1 (%s)",
		strings.Join(changed, ", "), r.st.Target, r.st.Plan.Stages[0].Name), nil)
	m.installLocked()
	m.wake(r.st.Scopes...)
	m.changedLocked()
}

// seenOfFirstStage returns the nodes seen during the current stage that the
// first stage selects, for a restart at the first stage: a canary that went
// away on the earlier target stays pending. With stages that read node
// metadata, only a restart from the first stage keeps them (a gone node's
// metadata is not kept).
func (r *Rollout) seenOfFirstStage() map[string]string {
	if r.st.Stage == 0 {
		return r.seen
	}
	if r.needNode {
		return nil
	}
	out := map[string]string{}
	for id, scope := range r.seen {
		if r.matchers[0].matches(scope, &corev3.Node{Id: id}) {
			out[id] = scope
		}
	}
	return out
}
