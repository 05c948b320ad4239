package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// stateVersion is the version of MarshalState's format.
const stateVersion = 1

// state is MarshalState's JSON.
type state struct {
	Version int `json:"version"`
	// Rollout is the running or most recent rollout; absent when there was
	// none.
	Rollout *Status `json:"rollout,omitempty"`
	// Bases are the base revisions by scope (Status.Base is the oldest).
	Bases map[string]uint64 `json:"bases,omitempty"`
	// Seen are the nodes of the current stage seen during it, by id, with
	// their scope (Rollout.seen): one that is gone is pending.
	Seen map[string]string `json:"seen,omitempty"`
	// Staging is set while a Stage's commit runs. The state is handed to
	// OnChange before the commit and again after it, but a snapshot of the
	// store taken between the commit and the second call holds the commit
	// with this state: RestoreState then starts the rollout the commit would
	// have started, at its first stage, with every scope changed since the
	// base (see restoreStaging).
	Staging *staging `json:"staging,omitempty"`
}

// staging is a Stage commit under way: the base before it, the plan, and
// the bases of the rollout it supersedes, if any.
type staging struct {
	Base   uint64            `json:"base"`
	Plan   Plan              `json:"plan"`
	Source string            `json:"source"`
	Bases  map[string]uint64 `json:"bases,omitempty"`
}

// MarshalState returns the Manager's state as JSON: the running or most
// recent rollout, with its plan, stage, base and target revisions and
// events. RestoreState reads it back.
func (m *Manager) MarshalState() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marshalLocked()
}

func (m *Manager) marshalLocked() ([]byte, error) {
	s := state{Version: stateVersion}
	if r := m.cur; r != nil {
		st := r.statusLocked()
		st.Applied = stream.Applied{} // counted again from the nodes
		s.Rollout = &st
		s.Bases = r.bases
		s.Seen = r.seen
	}
	s.Staging = m.staging
	return json.Marshal(s)
}

// RestoreState puts back a state MarshalState returned, as a process
// restarted from a snapshot does before it serves. A rollout that was
// running or held is where it was (R25): same stage, base and target; its bases
// are read from the store's history (View.ScopeAt) and kept there
// (Store.Hold) until it ends; its stage's window starts again, and the ACKs
// are counted again from the nodes as they reconnect. It is an error when
// the store's history no longer reaches a base, or when a rollout runs.
func (m *Manager) RestoreState(data []byte) error {
	m.mu.Lock()
	defer m.unlock()
	if r := m.activeLocked(); r != nil {
		return fmt.Errorf("restore rollout state: rollout %s is %s", r.st.ID, r.st.Phase)
	}
	r, err := m.decodeLocked(data, nil)
	if err != nil {
		return err
	}
	if sr, err := m.restoreStaging(data, r); err != nil {
		if r != nil {
			r.release()
		}
		return err
	} else if sr != nil {
		if r != nil {
			r.release()
		}
		r = sr
	}
	if r == nil {
		return nil
	}
	m.cur = r
	if r.routing {
		m.eventLocked(r, "restored", fmt.Sprintf("stage %d (%s) of revision %d restored; its window starts again",
			r.st.Stage+1, r.st.Plan.Stages[r.st.Stage].Name, r.st.Target), nil)
	}
	m.installLocked()
	m.wake(r.st.Scopes...)
	m.changedLocked()
	return nil
}

// restoreStaging returns the rollout a state saved while a Stage's commit
// ran stands for when the store holds revisions past the staging's base: the
// commit may have been persisted before the state that names its rollout
// was. Every scope changed since the base (or under the superseded rollout)
// is rolled out again from its first stage, with the base's content as its
// base and the store's newest revision as its target: content no stage has
// tested never goes past the first stage. Nil when the state has no staging,
// or the store holds nothing past its base.
func (m *Manager) restoreStaging(data []byte, prev *Rollout) (*Rollout, error) {
	var s state
	if err := json.Unmarshal(data, &s); err != nil || s.Staging == nil {
		return nil, nil
	}
	sg := s.Staging
	v := m.st.View()
	if v.Revision() <= sg.Base {
		return nil, nil // the commit was not persisted: nothing to roll out
	}
	bases := map[string]uint64{}
	for sc, b := range sg.Bases {
		bases[sc] = b
	}
	for _, rev := range v.Revisions() {
		if rev.Revision <= sg.Base {
			break // newest first
		}
		if _, ok := bases[rev.Scope]; !ok {
			bases[rev.Scope] = sg.Base
		}
	}
	if len(bases) == 0 {
		return nil, nil
	}
	scopes := slices.Sorted(maps.Keys(bases))
	base := sg.Base
	for _, b := range bases {
		base = min(base, b)
	}
	now := m.opts.Now()
	st := Status{ID: fmt.Sprintf("r%d", v.Revision()), Phase: Running, Plan: sg.Plan,
		Base: base, Target: v.Revision(), Scopes: scopes, StartedAt: now, StageStartedAt: now}
	if prev != nil {
		st.Events = prev.st.Events // the superseded rollout's, for the record
	}
	out, err := json.Marshal(state{Version: stateVersion, Rollout: &st, Bases: bases})
	if err != nil {
		return nil, err
	}
	r, err := m.decodeLocked(out, nil)
	if err != nil {
		return nil, err
	}
	m.eventLocked(r, "started", fmt.Sprintf("%s: restored while its commit ran: revision %d of %s over base %d; stage 1 of %d (%s)",
		sg.Source, st.Target, strings.Join(scopes, ", "), base, len(r.st.Plan.Stages), r.st.Plan.Stages[0].Name), nil)
	return r, nil
}

// decodeLocked reads a state into a Rollout; nil when it holds none. The
// base views of prev, the same rollout as this process ran it, are taken
// as they are when their revisions are the state's.
func (m *Manager) decodeLocked(data []byte, prev *Rollout) (*Rollout, error) {
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("restore rollout state: %w", err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("restore rollout state: version %d, want %d", s.Version, stateVersion)
	}
	if s.Rollout == nil {
		return nil, nil
	}
	st := *s.Rollout
	plan, err := st.Plan.Normalized()
	if err != nil {
		return nil, fmt.Errorf("restore rollout state: rollout %s: %w", st.ID, err)
	}
	if !slices.Equal(stageNames(plan), stageNames(st.Plan)) {
		return nil, fmt.Errorf("restore rollout state: rollout %s: its plan does not end with a stage of every node", st.ID)
	}
	if st.Stage < 0 || st.Stage >= len(plan.Stages) {
		return nil, fmt.Errorf("restore rollout state: rollout %s: stage %d of %d", st.ID, st.Stage, len(plan.Stages))
	}
	st.Plan = plan
	matchers, needNode := compileStages(plan)
	r := &Rollout{m: m, st: st, matchers: matchers, needNode: needNode, serving: st.Stage,
		bases: map[string]uint64{}, baseViews: map[string]store.View{}, seen: s.Seen}
	for _, sc := range st.Scopes {
		r.bases[sc] = st.Base
		if b, ok := s.Bases[sc]; ok {
			r.bases[sc] = b
		}
	}
	if st.Phase != Running && st.Phase != Held {
		return r, nil
	}
	v := m.st.View()
	for _, sc := range st.Scopes {
		bv, ok := v.ScopeAt(sc, r.bases[sc])
		if !ok {
			r.release()
			return nil, fmt.Errorf("restore rollout state: rollout %s: the store's history of scope %q does not reach its base, revision %d",
				st.ID, sc, r.bases[sc])
		}
		r.baseViews[sc] = bv
		release, err := m.st.Hold(sc, r.bases[sc])
		if err != nil {
			r.release()
			return nil, fmt.Errorf("restore rollout state: rollout %s: %w", st.ID, err)
		}
		r.releases = append(r.releases, release)
	}
	if v.Revision() < r.st.Target {
		r.st.Target = v.Revision()
	}
	r.routing = true
	r.st.StageStartedAt = m.opts.Now()
	r.stageStart = time.Now()
	return r, nil
}

// take makes r the rollout o decodes, keeping r.m, which Wait reads without
// the lock.
func (r *Rollout) take(o *Rollout) {
	r.st, r.matchers, r.needNode = o.st, o.matchers, o.needNode
	r.bases, r.baseViews, r.releases = o.bases, o.baseViews, o.releases
	r.routing, r.serving, r.stageStart, r.seen = o.routing, o.serving, o.stageStart, o.seen
}

func (r *Rollout) release() {
	for _, f := range r.releases {
		f()
	}
	r.releases = nil
}

func stageNames(p Plan) []string {
	var out []string
	for _, s := range p.Stages {
		out = append(out, s.Name)
	}
	return out
}

// loadShared adopts the shared state when another replica changed it.
func (m *Manager) loadShared(ctx context.Context) {
	sh := m.opts.Shared
	if sh == nil {
		return
	}
	data, version, err := sh.Load(ctx)
	if err != nil {
		m.log.Warn("rollout: cannot load the shared state", "err", err)
		return
	}
	m.mu.Lock()
	defer m.unlock()
	m.adoptLocked(data, version)
}

// adoptLocked makes the shared state at version the Manager's. A state
// older than the one the Manager last loaded or saved is not: a Load that
// read the state before this Manager's own Save returned may come back after
// it, and would undo what the Save made (Shared's versions only grow).
//
// Nor is a state whose target the store does not hold yet: taken before its
// target's commit reached this store, it would name that rollout's base as
// its target, and its stage's nodes would count as ACKed for content they
// were never sent. It is put off (sharedBehind): the Manager loads it again
// after its next Stage, commit to the rollout's scopes or change of the
// shared state, and decides no stage meanwhile.
func (m *Manager) adoptLocked(data []byte, version int64) {
	if version <= m.sharedVersion {
		return
	}
	if target := sharedTarget(data); m.st.View().Revision() < target {
		if m.sharedBehind != version {
			m.log.Info("rollout: the shared state names a target this store does not hold yet; no stage is decided here until it does",
				"target", target, "revision", m.st.View().Revision())
		}
		m.sharedBehind = version
		return
	}
	m.sharedBehind = 0
	m.sharedVersion = version
	if mine, err := m.marshalLocked(); err == nil && string(mine) == string(data) {
		return
	}
	prev := m.cur
	var r *Rollout
	if len(data) > 0 {
		var err error
		if r, err = m.decodeLocked(data, prev); err != nil {
			m.log.Error("rollout: the shared state cannot be served", "err", err)
			return
		}
	}
	switch {
	case prev != nil && r != nil && r.st.ID == prev.st.ID:
		r = m.joinLocked(prev, r)
	case prev != nil && prev.routing:
		prev.st.Phase = Superseded
		m.eventLocked(prev, "superseded", "superseded by the shared state", nil)
		prev.routing = false
		prev.release()
	}
	m.cur = r
	m.installLocked()
	if r != nil {
		m.wake(r.st.Scopes...)
	}
	// Waiters and Run see the change; it is not saved back.
	m.gen++
	close(m.changed)
	m.changed = make(chan struct{})
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// joinLocked makes mine, a rollout this process runs, the shared one of the
// same id, as the shared state says it stands, and returns mine: its Wait
// goes on. Shared rolled back while mine routes: this store holds the target,
// and is given the base again as the deciding replica's was.
func (m *Manager) joinLocked(mine, shared *Rollout) *Rollout {
	if mine.routing && shared.routing {
		shared.releases = append(shared.releases, mine.releases...)
		mine.releases = nil
		if shared.st.Stage == mine.st.Stage && shared.st.Target == mine.st.Target {
			shared.stageStart, shared.st.StageStartedAt = mine.stageStart, mine.st.StageStartedAt
		}
	} else if mine.routing && shared.st.Phase == RolledBack {
		source := fmt.Sprintf("rollback of rollout %s, decided by another replica", shared.st.ID)
		if err := mine.commitBase(source); err != nil {
			m.log.Error("rollout: rollback commit failed", "rollout", shared.st.ID, "err", err)
		}
	}
	mine.release()
	mine.take(shared)
	return mine
}

// sharedTarget is the target revision of the rollout a shared state names;
// 0 when it names none or cannot be read (decodeLocked says why).
func sharedTarget(data []byte) uint64 {
	var s state
	if len(data) == 0 || json.Unmarshal(data, &s) != nil || s.Rollout == nil {
		return 0
	}
	return s.Rollout.Target
}

// saveShared saves the state; when another replica saved first, its state
// is adopted instead.
func (m *Manager) saveShared(ctx context.Context) {
	sh := m.opts.Shared
	m.mu.Lock()
	data, err := m.marshalLocked()
	version := m.sharedVersion
	m.mu.Unlock()
	if err != nil {
		return
	}
	nv, saved, err := sh.Save(ctx, data, version)
	if err != nil {
		m.log.Error("rollout: cannot save the shared state", "err", err)
		return
	}
	if saved {
		m.mu.Lock()
		m.sharedVersion = max(m.sharedVersion, nv)
		m.mu.Unlock()
		return
	}
	m.loadShared(ctx)
}

// waitShared waits until the stage's nodes on every replica decide it, the
// shared state changes, or ctx ends.
func (m *Manager) waitShared(ctx context.Context, j *waitJob, changed <-chan struct{}) (stream.Applied, error) {
	sh := m.opts.Shared
	for {
		a, err := sh.Applied(ctx, j.id)
		if err == nil && j.withGone(&a) {
			m.recordSeen(j)
		}
		if err == nil && j.done(&a) {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-changed:
			_, version, err := sh.Load(ctx)
			m.mu.Lock()
			// A state put off (sharedBehind) is loaded again after the
			// next commit, which ends this wait too.
			moved := err == nil && version > max(m.sharedVersion, m.sharedBehind)
			m.mu.Unlock()
			if moved {
				return a, errStateChanged
			}
		}
	}
}
