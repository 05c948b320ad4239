package rollout

// The decisions of a rollout: the next stage, promotion, rollback.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// decideLocked acts on where the stage's nodes stand after a wait.
func (m *Manager) decideLocked(j *waitJob, a stream.Applied, err error, timedOut bool) {
	r := j.r
	if r != m.cur || j.gen != m.gen {
		return // the state changed during the wait: it is read again
	}
	r.st.Applied = a
	switch {
	case a.NACKed >= j.maxNACKs:
		var rejections []stream.Rejection
		var first string
		for _, n := range a.Nodes {
			if n.State != stream.NodeNACKed || n.Rejection == nil {
				continue
			}
			rejections = append(rejections, *n.Rejection)
			m.log.Warn("rollout: node rejected the change", "rollout", r.st.ID, "stage", r.st.Stage,
				"node", n.NodeID, "scope", n.Scope, "type", n.Rejection.TypeURL, "version", n.Rejection.Version,
				"revision", n.Rejection.Revision, "detail", BoundDetail(n.Rejection.Detail))
			if first == "" {
				first = fmt.Sprintf("NACK from node %s: %s", n.NodeID, BoundDetail(n.Rejection.Detail))
			}
		}
		m.nacks += uint64(a.NACKed)
		if first == "" {
			first = fmt.Sprintf("%d nodes NACKed", a.NACKed)
		}
		m.rollBackLocked(r, "nack", first, rejections)
	case j.held:
		// Held: only NACKs decide (above); Promote and Abort do the rest.
	case err == nil && allACKed(&a):
		m.eventLocked(r, "acked", fmt.Sprintf("stage %d (%s): %d nodes ACKed revision %d",
			r.st.Stage+1, r.st.Plan.Stages[r.st.Stage].Name, a.ACKed, r.st.Target), nil)
		m.advanceLocked(r)
	case timedOut && len(a.Nodes) == 0:
		m.eventLocked(r, "empty", fmt.Sprintf("stage %d (%s): no node of the stage was connected during its window of %s",
			r.st.Stage+1, r.st.Plan.Stages[r.st.Stage].Name, r.st.Plan.Window), nil)
		m.advanceLocked(r)
	case timedOut:
		msg := fmt.Sprintf("stage %d (%s): the window of %s ended with %d of %d nodes pending and %d NACKed",
			r.st.Stage+1, r.st.Plan.Stages[r.st.Stage].Name, r.st.Plan.Window, a.Pending, len(a.Nodes), a.NACKed)
		if j.gone > 0 {
			msg += fmt.Sprintf(" (%d of them seen during the stage and gone)", j.gone)
		}
		if r.st.Plan.OnTimeout == RollBack {
			m.rollBackLocked(r, "timeout", msg, nil)
			return
		}
		r.st.Phase = Held
		m.eventLocked(r, "held", msg+": held until promoted or aborted", nil)
		m.changedLocked()
	}
}

// advanceLocked starts the next stage of r, or promotes r after its last.
func (m *Manager) advanceLocked(r *Rollout) {
	if r.st.Stage+1 >= len(r.st.Plan.Stages) {
		r.st.Phase = Promoted
		m.eventLocked(r, "promoted", fmt.Sprintf("every stage ACKed revision %d: every node of %s runs it",
			r.st.Target, strings.Join(r.st.Scopes, ", ")), nil)
		m.endLocked(r)
	} else {
		r.st.Stage++
		r.serving = r.st.Stage
		r.seen = nil // the nodes seen during the stage before
		r.st.Phase = Running
		r.st.StageStartedAt = m.opts.Now()
		r.stageStart = time.Now()
		r.st.Applied = stream.Applied{}
		m.eventLocked(r, "stage", fmt.Sprintf("stage %d of %d (%s) serves revision %d",
			r.st.Stage+1, len(r.st.Plan.Stages), r.st.Plan.Stages[r.st.Stage].Name, r.st.Target), nil)
		m.installLocked()
		m.wake(r.st.Scopes...)
	}
	m.changedLocked()
}

// rollBackLocked ends r by putting its base back: first in what every node
// of its scopes is served, then in the store, by a commit of the base's
// content (the same bytes, so the same versions; see commitBase). Commits to
// other scopes since the base stay.
func (m *Manager) rollBackLocked(r *Rollout, what, msg string, rejections []stream.Rejection) {
	r.st.Phase = RolledBack
	m.eventLocked(r, what, msg, rejections)
	r.serving = -1
	m.installLocked()
	m.wake(r.st.Scopes...)
	source := fmt.Sprintf("rollback of rollout %s: %s", r.st.ID, msg)
	if err := r.commitBase(source); err != nil {
		// The router keeps serving the base to every node of the scopes.
		m.eventLocked(r, "rollback_failed", "the base could not be committed again: "+err.Error(), nil)
		m.log.Error("rollout: rollback commit failed; the base is still served to every node", "rollout", r.st.ID, "err", err)
	} else {
		m.endLocked(r)
	}
	m.rollbacks++
	m.changedLocked()
}

// commitBase commits the base's content of the rollout's scopes again (R24:
// every node is served the base at exactly the versions it had). When
// the rollout has one base and no other scope changed since, that is
// store.RollbackTo(base): the base's entries as they are. Otherwise the
// base's content of the rollout's scopes alone is committed, so that
// commits to other scopes since stand; its entries are given as their
// encodings (store.SetEncoded), which this build gives the same bytes.
func (r *Rollout) commitBase(source string) error {
	if r.alone() {
		if _, err := r.m.st.RollbackTo(r.st.Base, source); err == nil {
			return nil
		}
	}
	_, err := r.m.st.CommitWith(store.CommitOptions{Source: source}, r.baseChanges()...)
	return err
}

// alone reports whether every scope of the rollout has the same base and no
// other scope changed since.
func (r *Rollout) alone() bool {
	for _, b := range r.bases {
		if b != r.st.Base {
			return false
		}
	}
	for _, rev := range r.m.st.View().Revisions() {
		if rev.Revision <= r.st.Base {
			break // newest first
		}
		if !slices.Contains(r.st.Scopes, rev.Scope) {
			return false
		}
	}
	return true
}

// baseChanges is a commit of the rollout's scopes' base content.
func (r *Rollout) baseChanges() []store.Change {
	var changes []store.Change
	for _, s := range r.st.Scopes {
		changes = append(changes, store.ReplaceScope(s))
		for typeURL, t := range r.baseViews[s].Tables(s) {
			for _, e := range t.Sorted() {
				changes = append(changes, store.SetEncoded(s, typeURL, e.Name, e.Body))
			}
		}
	}
	return changes
}

// endLocked stops routing r's scopes: every node is served the store's
// current content, and the base is released.
func (m *Manager) endLocked(r *Rollout) {
	r.routing = false
	r.release()
	m.installLocked()
	m.wake(r.st.Scopes...)
}
