package machine

import (
	"hash/maphash"
	"maps"
	"runtime"
	"slices"
	"sync"
	"unsafe"
	"weak"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// Shared subscriptions
//
// Thousands of Envoys of one fleet subscribe to the same thousand EDS names. A
// set of names per stream would cost each stream a map and a sorted copy (about
// 100 KiB for a thousand names), so equal sets are interned: every stream
// subscribed to the same names points to one immutable nameSet. A stream whose
// subscription changes builds its new set privately and interns it again. The
// table holds its sets weakly: a set no stream uses any more is collected.

// nameSet is an interned, immutable set of subscribed names.
type nameSet struct {
	names  map[string]struct{}
	sorted []string
}

type internTable struct {
	mu   sync.Mutex
	seed maphash.Seed
	sets map[uint64][]weak.Pointer[nameSet]
}

// intern returns the shared set holding exactly the names of m, which it may
// adopt: the caller must not modify m afterwards.
func (t *internTable) intern(m map[string]struct{}) *nameSet {
	sorted := slices.Sorted(maps.Keys(m))
	var h maphash.Hash
	h.SetSeed(t.seed)
	for _, n := range sorted {
		h.WriteString(n)
		h.WriteByte(0)
	}
	k := h.Sum64()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, wp := range t.sets[k] {
		if s := wp.Value(); s != nil && slices.Equal(s.sorted, sorted) {
			return s
		}
	}
	s := &nameSet{names: m, sorted: sorted}
	t.sets[k] = append(t.sets[k], weak.Make(s))
	runtime.AddCleanup(s, t.prune, k)
	return s
}

// lookupSorted returns the interned set whose names are exactly names, if names
// is strictly ascending, holds no wildcard and no xdstp name (which would need
// normalising, X1), and such a set exists; otherwise nil.
func (t *internTable) lookupSorted(names []string) *nameSet {
	if len(names) == 0 {
		return nil
	}
	var h maphash.Hash
	h.SetSeed(t.seed)
	for i, n := range names {
		if (i > 0 && names[i-1] >= n) || n == Wildcard || protocol.IsXdstp(n) {
			return nil
		}
		h.WriteString(n)
		h.WriteByte(0)
	}
	k := h.Sum64()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, wp := range t.sets[k] {
		if s := wp.Value(); s != nil && slices.Equal(s.sorted, names) {
			return s
		}
	}
	return nil
}

// prune forgets the collected sets of one hash.
func (t *internTable) prune(k uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.sets[k][:0]
	for _, wp := range t.sets[k] {
		if wp.Value() != nil {
			live = append(live, wp)
		}
	}
	if len(live) == 0 {
		delete(t.sets, k)
	} else {
		t.sets[k] = live
	}
}

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

// Answers shared between streams
//
// After a commit, every stream of a fleet asks the same questions of the same two
// tables: the one it was last sent and the new one. The answers that depend on
// those tables alone (or on them and an interned subscription) are computed by
// the first stream and remembered here, so a push to N streams does the table
// work once, not N times. Every answer is read-only.
//
// A memo keeps none of the tables and subscriptions its answers are about
// alive: it knows them by address, confirmed by weak pointers, and forgets an
// answer when the newest table it is about is collected. It is small, and
// forgets everything when full.

// question is what an answer depends on: an interned subscription and the
// tables old, cur and, for EDS, the scope's clusters; cur is always set.
type question struct {
	set           *nameSet
	old, cur, cds *store.Table
}

// questionKey is a question by the addresses of its parts.
type questionKey struct{ set, old, cur, cds uintptr }

func (q question) key() questionKey {
	return questionKey{
		set: uintptr(unsafe.Pointer(q.set)),
		old: uintptr(unsafe.Pointer(q.old)),
		cur: uintptr(unsafe.Pointer(q.cur)),
		cds: uintptr(unsafe.Pointer(q.cds)),
	}
}

// answer is a remembered answer, with weak pointers to the parts of its question:
// a collected object's address may be reused by another.
type answer[V any] struct {
	set           weak.Pointer[nameSet]
	old, cur, cds weak.Pointer[store.Table]
	v             V
}

func (a *answer[V]) answers(q question) bool {
	return a.cur.Value() == q.cur && a.old.Value() == q.old && a.cds.Value() == q.cds && a.set.Value() == q.set
}

type memo[V any] struct {
	mu sync.Mutex
	m  map[questionKey]*answer[V]
	// watched are the tables answers were about (their cur), by address. A
	// table stays here while it lives, however often its answers come and go, so
	// that each is watched once: a cleanup drops its answers when it is collected.
	watched map[uintptr]weak.Pointer[store.Table]
}

// maxAnswers bounds each memo; past it, the memo starts afresh.
const maxAnswers = 256

// get returns the answer to q, which compute computes on a miss.
func (p *memo[V]) get(q question, compute func() V) V {
	if q.cur == nil {
		return compute()
	}
	k := q.key()
	p.mu.Lock()
	a := p.m[k]
	p.mu.Unlock()
	if a != nil && a.answers(q) {
		return a.v
	}
	v := compute()
	a = &answer[V]{set: weak.Make(q.set), old: weak.Make(q.old), cur: weak.Make(q.cur), cds: weak.Make(q.cds), v: v}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxAnswers {
		p.m = make(map[questionKey]*answer[V])
	}
	p.m[k] = a
	if w, ok := p.watched[k.cur]; !ok || w.Value() != q.cur {
		if p.watched == nil {
			p.watched = make(map[uintptr]weak.Pointer[store.Table])
		}
		p.watched[k.cur] = a.cur
		runtime.AddCleanup(q.cur, p.forget, k.cur)
	}
	return v
}

// forget drops the answers about the table at cur once it has been collected.
func (p *memo[V]) forget(cur uintptr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, a := range p.m {
		if k.cur == cur && a.cur.Value() == nil {
			delete(p.m, k)
		}
	}
	if w := p.watched[cur]; w.Value() == nil {
		delete(p.watched, cur)
	}
}

// size reports how many answers the memo holds and how many tables it
// watches, for tests.
func (p *memo[V]) size() (answers, tables int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m), len(p.watched)
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
