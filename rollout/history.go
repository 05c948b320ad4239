package rollout

// Stand-ins for the store's history (View.ScopeAt, Store.Hold, RollbackTo,
// CommitWith, Result.Scopes) until the store has it.

import (
	"errors"
	"slices"

	"github.com/leanxds/leanxds/store"
)

var errNoHistory = errors.New("the store keeps no history")

// changedScopes returns the scopes a commit changed: those whose tables
// differ between pre and post.
func changedScopes(_ store.Result, pre, post store.View) []string {
	types := servedTypes()
	var out []string
	for _, s := range slices.Compact(slices.Sorted(slices.Values(append(pre.Scopes(), post.Scopes()...)))) {
		for _, u := range types {
			if pre.Table(s, u) != post.Table(s, u) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func scopeAt(v store.View, scope string, rev uint64) (store.View, bool) {
	return store.View{}, false
}

func hold(st *store.Store, scope string, rev uint64) (func(), error) { return func() {}, nil }

func rollbackTo(st *store.Store, rev uint64, source string) (store.Result, error) {
	return store.Result{}, errNoHistory
}

func commitWith(st *store.Store, source string, changes []store.Change) (store.Result, error) {
	return st.Commit(changes...)
}
