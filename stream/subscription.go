package stream

import (
	"maps"
	"slices"

	"github.com/leanxds/leanxds/protocol"
)

// Wildcard is the resource name that subscribes to every resource of a type (R10, D4).
const Wildcard = "*"

// subscription is what a client asked for, for one type on one stream.
type subscription struct {
	// requested: a request of this type has arrived on the stream.
	requested bool
	// wildcard: the client gets every resource of the type, by "*" or the legacy
	// rule (R10, R11).
	wildcard bool
	// legacy: the wildcard comes from a first request that named nothing (R11) and
	// ends as soon as the client names anything.
	legacy bool
	// names are the explicitly subscribed names, "*" excluded, xdstp names
	// normalized (X1); glob collections among them are also in globs (X2).
	names map[string]struct{}
	globs map[string]protocol.Glob
	// sorted caches sortedNames until the names change.
	sorted []string
}

// subscribes reports whether name is part of the subscription.
func (s *subscription) subscribes(name string) bool {
	if s.wildcard {
		return true
	}
	if _, ok := s.names[name]; ok {
		return true
	}
	for _, g := range s.globs {
		if g.Matches(name) {
			return true
		}
	}
	return false
}

// add and remove keep names and globs together.
func (s *subscription) add(name string) {
	if s.names == nil {
		s.names = make(map[string]struct{})
	}
	s.names[name] = struct{}{}
	s.sorted = nil
	if g, ok := protocol.ParseGlob(name); ok {
		if s.globs == nil {
			s.globs = make(map[string]protocol.Glob)
		}
		s.globs[name] = g
	}
}

func (s *subscription) remove(name string) {
	if _, ok := s.names[name]; ok {
		s.sorted = nil
	}
	delete(s.names, name)
	delete(s.globs, name)
}

// sortedNames returns the explicit names, sorted. The slice is shared until the
// names change: do not modify it.
func (s *subscription) sortedNames() []string {
	if s.sorted == nil && len(s.names) > 0 {
		s.sorted = slices.Sorted(maps.Keys(s.names))
	}
	return s.sorted
}

// update applies a SotW request's resource_names: the complete list the client now
// wants. It returns the explicit names that are new and whether the wildcard was
// newly turned on; both must be answered even if the client had them (R9).
func (s *subscription) update(names []string) (added []string, wildcardOn bool) {
	first := !s.requested
	s.requested = true
	wasWildcard := s.wildcard

	next := make(map[string]struct{}, len(names))
	star := false
	for _, n := range names {
		if n == Wildcard {
			star = true
			continue
		}
		next[protocol.NormalizeName(n)] = struct{}{} // X1, X3
	}
	switch {
	case star:
		// R10: "*" subscribes to everything and may stand beside explicit names.
		s.wildcard, s.legacy = true, false
	case len(names) == 0 && (first || s.legacy):
		// R11: a first request naming nothing is a (legacy) wildcard, and stays one
		// while the client keeps naming nothing.
		s.wildcard, s.legacy = true, true
	default:
		// R11, S4: after any explicit name, the list is exact; an empty one
		// unsubscribes from everything, and a dropped "*" ends the wildcard.
		s.wildcard, s.legacy = false, false
	}
	for n := range next {
		if _, had := s.names[n]; !had {
			added = append(added, n)
		}
	}
	s.names, s.globs, s.sorted = nil, nil, nil
	for n := range next {
		s.add(n)
	}
	slices.Sort(added)
	return added, s.wildcard && !wasWildcard
}

// subscribe applies a delta request's resource_names_subscribe (D4, D5);
// unsubscribing tells whether the request also unsubscribes from anything. It
// returns the names to answer even if the client seems current (D5: every name in
// resource_names_subscribe is answered) and whether the wildcard was turned on.
func (s *subscription) subscribe(names []string, unsubscribing bool) (answer []string, wildcardOn bool) {
	first := !s.requested
	s.requested = true
	if first && len(names) == 0 && !unsubscribing {
		// D4: a first request with both lists empty is a (legacy) wildcard.
		s.wildcard = true
		return nil, true
	}
	for _, n := range names {
		if n == Wildcard {
			wildcardOn = !s.wildcard
			s.wildcard = true
			continue
		}
		n = protocol.NormalizeName(n) // X1, X3
		s.add(n)
		answer = append(answer, n)
	}
	return answer, wildcardOn
}

// unsubscribe applies a delta request's resource_names_unsubscribe. It returns the
// names the wildcard still covers: the client drops what it unsubscribes, so they
// must be sent again (D6).
func (s *subscription) unsubscribe(names []string) (resend []string) {
	for _, n := range names {
		if n == Wildcard {
			s.wildcard = false
			continue
		}
		n = protocol.NormalizeName(n)
		s.remove(n)
		if s.wildcard {
			resend = append(resend, n)
		}
	}
	return resend
}
