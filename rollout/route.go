package rollout

import (
	"math"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// table is what the Router serves, replaced whole (an atomic pointer) on
// every change of a rollout: streams read it without a lock.
type table struct {
	// scopes are the scopes under rollout.
	scopes map[string]*scopeRoute
	// other, when set, routes every scope not in scopes: while a Stage's
	// commit runs, the scopes it changes are not known yet, and every node
	// that is not of the first stage keeps the content before the commit.
	other *scopeRoute
}

// scopeRoute is how the nodes of one scope under rollout are served.
type scopeRoute struct {
	// base is the view served to the nodes no stage up to the current one
	// selects: the scope's content before the change.
	base store.View
	// target is the newest revision of the scope's content the rollout
	// serves its stages; content committed past it outside the rollout is
	// untested, and goes to the first stage's nodes only.
	target uint64
	// sel are the matchers of every stage up to the current one; first those
	// of the first stage.
	sel, first []matcher
	// types are the served type URLs, to look at the scope's tables without
	// allocating.
	types []string
	// past caches changedPast for one store revision: the revision shifted
	// left by one, with the answer in the low bit. Every stream asks of the
	// same newest view.
	past atomic.Uint64
	// served records the nodes served the target (Rollout.served); nil
	// while a Stage's commit runs.
	served *servedSet
}

// View serves a node of a scope under rollout the store's current content
// when its stage is reached, and the content before the change otherwise
// (stream.Router; R23, and R25 whatever the node's stream). Nodes of other
// scopes are served current. It costs two map
// lookups and the stage matchers, and allocates nothing.
func (m *Manager) View(scope string, node *corev3.Node, cur store.View) store.View {
	return m.view(scope, node, cur, true)
}

// Peek returns what View would serve the node now, without recording it as
// served during the stage: the admin server's /debug/fleet asks it of every
// node of a fleet (admin.RolloutRouter).
func (m *Manager) Peek(scope string, node *corev3.Node, cur store.View) store.View {
	return m.view(scope, node, cur, false)
}

func (m *Manager) view(scope string, node *corev3.Node, cur store.View, record bool) store.View {
	t := m.routes.Load()
	if t == nil {
		return cur
	}
	r := t.scopes[scope]
	if r == nil {
		if r = t.other; r == nil {
			return cur
		}
	}
	sel := r.sel
	if cur.Revision() > r.target && r.changedPast(cur, scope) {
		// A commit the rollout has not seen yet changed the scope: until the
		// Manager restarts the rollout with it, only the first stage gets it.
		sel = r.first
	}
	if anyMatches(sel, scope, node) {
		if record && r.served != nil {
			r.served.add(node.GetId(), scope)
		}
		return cur
	}
	return r.base
}

// changedPast reports whether a table of scope in v changed after r.target.
func (r *scopeRoute) changedPast(v store.View, scope string) bool {
	rev := v.Revision()
	if x := r.past.Load(); x>>1 == rev {
		return x&1 == 1
	}
	changed := false
	for _, u := range r.types {
		if v.Table(scope, u).Revision() > r.target {
			changed = true
			break
		}
	}
	x := rev << 1
	if changed {
		x |= 1
	}
	r.past.Store(x)
	return changed
}

// servedTypes returns every served type URL.
func servedTypes() []string {
	var out []string
	for _, t := range protocol.Types() {
		out = append(out, t.URL)
	}
	return out
}

// buildTable makes the table of a rollout at the stage it serves. A rollout
// that serves no stage any more (rolled back, before its base is committed
// again) serves -1: every node of its scopes gets the base.
func (r *Rollout) buildTable(types []string) *table {
	t := &table{scopes: make(map[string]*scopeRoute, len(r.st.Scopes))}
	var sel, first []matcher
	if r.serving >= 0 {
		sel = r.matchers[:r.serving+1]
		first = r.matchers[:1]
	}
	if r.serving >= 0 && (r.served == nil || r.served.stage != r.st.Stage || r.served.target != r.st.Target) {
		r.served = &servedSet{stage: r.st.Stage, target: r.st.Target}
	}
	for _, s := range r.st.Scopes {
		t.scopes[s] = &scopeRoute{base: r.baseViews[s], target: r.st.Target, sel: sel, first: first, types: types}
		if r.serving >= 0 {
			t.scopes[s].served = r.served
		}
	}
	return t
}

// pendingRoute routes every scope not under rollout while a Stage commit
// runs: the first stage of plan is served the commit, every other node the
// content before it.
func pendingRoute(pre store.View, first []matcher, types []string) *scopeRoute {
	return &scopeRoute{base: pre, target: math.MaxUint64, sel: first, first: first, types: types}
}
