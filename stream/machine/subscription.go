package machine

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
	// spelled maps each explicitly subscribed name the client spelled otherwise
	// than its normal form (an xdstp name with its context parameters out of
	// order) to the client's spelling, so that delta responses name it as the
	// client does (X4). It holds subscribed names only, is forgotten with their
	// unsubscription, and stays nil while every name is spelled in normal form
	// (SotW never fills it: there the resource names itself).
	spelled map[string]string
	// sorted caches sortedNames until the names change.
	sorted []string
	// set, when not nil, is the interned nameSet that names and sorted belong to,
	// shared with other streams: they are never modified in place (own copies
	// them first).
	set *nameSet
	// sets is the table of shared sets, of the machine's Caches.
	sets *internTable
}

// own makes names private to this subscription before a change.
func (s *subscription) own() {
	if s.set != nil {
		s.names, s.sorted, s.set = maps.Clone(s.names), nil, nil
	}
}

// intern shares names with every other subscription to the same set.
func (s *subscription) intern() {
	if s.set != nil || len(s.names) == 0 {
		return
	}
	s.set = s.sets.intern(s.names)
	s.names, s.sorted = s.set.names, s.set.sorted
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
	s.own()
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
	if _, ok := s.names[name]; !ok {
		delete(s.globs, name)
		return
	}
	s.own()
	s.sorted = nil
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
	if !first && s.same(names) {
		// The common case: an ACK repeating the list. Applying the same list twice
		// changes nothing, so skip rebuilding the set (and its sorted cache).
		return nil, false
	}
	if set := s.sets.lookupSorted(names); set != nil {
		// A sorted list of plain names that another stream already subscribes to
		// (a fleet following the same change): adopt its set without building one.
		for _, n := range set.sorted {
			if _, had := s.names[n]; !had {
				added = append(added, n)
			}
		}
		s.wildcard, s.legacy = false, false // R11, S4: an explicit list is exact
		s.names, s.globs, s.sorted, s.set = set.names, nil, set.sorted, set
		return added, false
	}
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
	s.names, s.globs, s.sorted, s.set = nil, nil, nil, nil
	if len(next) > 0 {
		s.names = next
	}
	for n := range next {
		if g, ok := protocol.ParseGlob(n); ok {
			if s.globs == nil {
				s.globs = make(map[string]protocol.Glob)
			}
			s.globs[n] = g
		}
	}
	s.intern()
	slices.Sort(added)
	return added, s.wildcard && !wasWildcard
}

// same reports, without allocating, whether names is exactly the explicit set
// already held, in the order sortedNames keeps it: Envoy sends its names sorted
// and repeats them in every ACK. A list in another order is not recognised
// (update then takes the general path).
func (s *subscription) same(names []string) bool {
	if s.wildcard || len(names) == 0 || len(names) != len(s.names) {
		return false
	}
	return slices.Equal(names, s.sortedNames())
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
		s.wildcard, s.legacy = true, true
		return nil, true
	}
	if s.legacy && len(names) > 0 && !slices.Contains(names, Wildcard) {
		// D4, like R11: the legacy wildcard lasts until the client names something.
		s.wildcard, s.legacy = false, false
	}
	for _, n := range names {
		if n == Wildcard {
			wildcardOn = !s.wildcard
			s.wildcard, s.legacy = true, false
			continue
		}
		key := protocol.NormalizeName(n) // X1, X3
		s.add(key)
		s.spell(key, n) // X4
		answer = append(answer, key)
	}
	s.intern()
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
		delete(s.spelled, n) // X4: a spelling lasts as long as its subscription
		if s.subscribes(n) {
			resend = append(resend, n) // D6, X2: "*" or a glob still covers it
		}
	}
	s.intern()
	return resend
}

// spell records that the client subscribed to key, a normalized name, as
// spelling. The newest spelling of a name wins; spelling it in normal form again
// forgets an older spelling (X4).
func (s *subscription) spell(key, spelling string) {
	if spelling == key {
		delete(s.spelled, key)
		return
	}
	if s.spelled == nil {
		s.spelled = make(map[string]string)
	}
	s.spelled[key] = spelling
}

// spelling returns the name a delta response gives the resource called name (a
// normalized name): the client's own spelling if it subscribed to it with one,
// name otherwise (X4). A glob collection's members were not spelled by the client
// and keep the store's name (X2).
func (s *subscription) spelling(name string) string {
	if sp, ok := s.spelled[name]; ok {
		return sp
	}
	return name
}
