package stream

import (
	"maps"
	"slices"
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
	// names are the explicitly subscribed names, "*" excluded.
	names map[string]struct{}
}

// subscribes reports whether name is part of the subscription.
func (s *subscription) subscribes(name string) bool {
	if s.wildcard {
		return true
	}
	_, ok := s.names[name]
	return ok
}

// sortedNames returns the explicit names, sorted.
func (s *subscription) sortedNames() []string {
	return slices.Sorted(maps.Keys(s.names))
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
		next[n] = struct{}{}
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
	s.names = next
	slices.Sort(added)
	return added, s.wildcard && !wasWildcard
}
