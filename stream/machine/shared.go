package machine

import (
	"slices"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// Version digests of shared subscriptions
//
// An SotW EDS or RDS response's version is the digest of every resource the
// subscription covers, which takes a lookup per subscribed name. Streams sharing
// an interned subscription and reading the same tables get the same digest, so
// it is computed once and remembered here for the others.

// subscribedDigest returns the digest of every resource the subscription of ts
// covers in cur; subscribed computes them.
func (s *machine) subscribedDigest(v store.View, ts *typeState, cur *store.Table, subscribed func() []*store.Entry) protocol.Digest {
	if ts.sub.set == nil || ts.sub.wildcard || len(ts.sub.globs) > 0 {
		return digestOf(subscribed())
	}
	q := question{set: ts.sub.set, cur: cur}
	if ts.typeURL == protocol.TypeEndpoint {
		// EDS: explicit empty assignments (P2) depend on the clusters.
		q.cds = v.Table(s.Scope, protocol.TypeCluster)
	}
	return s.caches.digests.get(q, func() protocol.Digest { return digestOf(subscribed()) })
}

// differs reports whether any resource sub covers differs between old and
// cur; for a wildcard subscription, which covers every name, the answer depends on
// the tables alone and is shared.
func (c *Caches) differs(old, cur *store.Table, sub *subscription) bool {
	if old == nil || !sub.wildcard {
		return len(changedNames(old, cur, sub)) > 0
	}
	return c.differ.get(question{old: old, cur: cur}, func() bool { return len(changedNames(old, cur, sub)) > 0 })
}

// goneBetween returns the entries of old that cur no longer holds.
func (c *Caches) goneBetween(old, cur *store.Table) []*store.Entry {
	return c.gone.get(question{old: old, cur: cur}, func() []*store.Entry {
		var gone []*store.Entry
		if names, ok := cur.ChangedSince(old.Revision()); ok {
			for _, n := range names {
				if e := old.Get(n); e != nil && cur.Get(n) == nil {
					gone = append(gone, e)
				}
			}
		} else {
			for e := range old.All() {
				if cur.Get(e.Name) == nil {
					gone = append(gone, e)
				}
			}
		}
		return slices.Clip(gone)
	})
}

// allChanged is allChanged(old, r.Resources), shared when r holds its whole
// table.
func (c *Caches) allChanged(old *store.Table, r *Response) bool {
	if old == nil || !r.Whole {
		return allChanged(old, r.Resources)
	}
	return c.changed.get(question{old: old, cur: r.Table}, func() bool { return allChanged(old, r.Resources) })
}

// subscribedShared is s.subscribed, shared between streams of one interned
// subscription reading the same tables. The slice is read-only.
func (s *machine) subscribedShared(v store.View, ts *typeState, cur *store.Table) []*store.Entry {
	if ts.sub.set == nil || ts.sub.wildcard || len(ts.sub.globs) > 0 {
		return s.subscribed(v, ts, cur)
	}
	q := question{set: ts.sub.set, cur: cur}
	if ts.typeURL == protocol.TypeEndpoint {
		q.cds = v.Table(s.Scope, protocol.TypeCluster)
	}
	return s.caches.entries.get(q, func() []*store.Entry { return slices.Clip(s.subscribed(v, ts, cur)) })
}

// usedBy returns the EDS service names the clusters of t use (for a
// cluster table) or the route names its listeners use (for a listener table).
// It depends on t alone and is shared; the set is read-only.
func (c *Caches) usedBy(t *store.Table) map[string]struct{} {
	return c.uses.get(question{cur: t}, func() map[string]struct{} {
		used := make(map[string]struct{})
		for e := range t.All() {
			refs := e.Refs.Endpoints
			if e.TypeURL == protocol.TypeListener {
				refs = e.Refs.Routes
			}
			for _, n := range refs {
				used[n] = struct{}{}
			}
		}
		return used
	})
}
