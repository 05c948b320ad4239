package stream

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/store"
)

// Router decides which view of the store a node is served. A rollout is one: it
// serves the nodes of its current stage the store's newest content and the
// other nodes of the scopes it changes the content they had before it.
//
// View is called by a stream each time it reads the store (each request and
// each push), from the stream's goroutine: it must be fast, must not block,
// and must return current itself, or a view that holds the same content for
// every scope but scope. Versions are digests of content, so a node served an
// earlier view is sent exactly the version strings that view's content had.
//
// When a Router starts serving some nodes another view, it calls Server.Wake
// for their scopes: streams read the store again when woken, a commit changes
// what they watch, or their client sends a request.
type Router interface {
	View(scope string, node *corev3.Node, current store.View) store.View
}

// viewFor returns the view of the store the node of scope is served now.
func (s *Server) viewFor(scope string, node *corev3.Node) store.View {
	v := s.store.View()
	if s.opts.Router != nil {
		return s.opts.Router.View(scope, node, v)
	}
	return v
}

// resolveScope resolves the scope a node asks for (Options.ScopeOf) against
// the view the node would be served in it, not the store's newest: with a
// Router serving the node an earlier view (a rollout whose change creates the
// scope, at a stage that does not reach the node yet), a scope that view does
// not hold falls back to DefaultScope, as it did before the change (see
// Options.NoDefaultScope).
func (s *Server) resolveScope(requested string, node *corev3.Node) string {
	return s.scopeFor(s.viewFor(requested, node), requested)
}

// Wake makes every open stream of the scopes given (of every scope when
// none is given, or one is "") read the store again and send what its client
// lacks, as a commit that changes what it watches would. It does not wait for
// them, and costs one pass over the server's streams however many scopes are
// given. A Router calls it when it changes the view some nodes of those
// scopes are served. It also wakes the streams of nodes that asked for one of
// the scopes and were served DefaultScope (the view they were served had no
// such scope): one that would now be resolved to it ends with
// codes.Unavailable and reconnects (Session.Rescoped).
func (s *Server) Wake(scopes ...string) {
	all := len(scopes) == 0 || slices.Contains(scopes, "")
	var set map[string]bool
	if !all && len(scopes) > 4 {
		set = make(map[string]bool, len(scopes))
		for _, sc := range scopes {
			set[sc] = true
		}
	}
	woken := func(scope string) bool {
		if set != nil {
			return set[scope]
		}
		return slices.Contains(scopes, scope)
	}
	for _, c := range s.all() {
		if !c.opened.Load() {
			continue
		}
		if all || woken(c.shownInfo.Load().Scope) || c.requested.Load() != nil && woken(*c.requested.Load()) {
			c.watcher.Signal()
		}
	}
}
