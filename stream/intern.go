package stream

import (
	"hash/maphash"
	"maps"
	"runtime"
	"slices"
	"sync"
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

var interned = internTable{seed: maphash.MakeSeed(), sets: map[uint64][]weak.Pointer[nameSet]{}}

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

type digestKey struct {
	set *nameSet
	cur *store.Table
	// cds is the scope's cluster table for EDS, whose explicit empty assignments
	// (P2) depend on the clusters; nil for other types.
	cds *store.Table
}

type digestMemo struct {
	mu sync.Mutex
	m  map[digestKey]protocol.Digest
}

// maxDigests bounds the memo; it holds tables, so it is kept small and simply
// forgets everything when full.
const maxDigests = 256

var digests = digestMemo{m: map[digestKey]protocol.Digest{}}

// subscribedDigest returns the digest of every resource the subscription of ts
// covers in cur; subscribed computes them.
func (s *machine) subscribedDigest(v store.View, ts *typeState, cur *store.Table, subscribed func() []*store.Entry) protocol.Digest {
	if ts.sub.set == nil || ts.sub.wildcard || len(ts.sub.globs) > 0 {
		return digestOf(subscribed())
	}
	k := digestKey{set: ts.sub.set, cur: cur}
	if ts.typeURL == protocol.TypeEndpoint {
		k.cds = v.Table(s.Scope, protocol.TypeCluster)
	}
	digests.mu.Lock()
	d, ok := digests.m[k]
	digests.mu.Unlock()
	if ok {
		return d
	}
	d = digestOf(subscribed())
	digests.mu.Lock()
	if len(digests.m) >= maxDigests {
		clear(digests.m)
	}
	digests.m[k] = d
	digests.mu.Unlock()
	return d
}

// Answers shared between streams
//
// After a commit, every stream of a fleet asks the same questions of the same two
// tables: the one it was last sent and the new one. The answers that depend on
// those tables alone are computed by the first stream and remembered here, so a
// push to N streams does the table work once, not N times. Each memo is small
// and forgets everything when full; every answer is read-only.

type tablePair struct{ old, cur *store.Table }

type pairMemo[V any] struct {
	mu sync.Mutex
	m  map[tablePair]V
}

func (p *pairMemo[V]) get(old, cur *store.Table, compute func() V) V {
	k := tablePair{old, cur}
	p.mu.Lock()
	v, ok := p.m[k]
	p.mu.Unlock()
	if ok {
		return v
	}
	v = compute()
	p.mu.Lock()
	if p.m == nil || len(p.m) >= maxDigests {
		p.m = make(map[tablePair]V)
	}
	p.m[k] = v
	p.mu.Unlock()
	return v
}

var (
	differMemo  pairMemo[bool]
	usesMemo    pairMemo[map[string]struct{}]
	goneMemo    pairMemo[[]*store.Entry]
	changedMemo pairMemo[bool]
	entriesMemo struct {
		mu sync.Mutex
		m  map[digestKey][]*store.Entry
	}
)

// differsShared reports whether any resource sub covers differs between old and
// cur; for a wildcard subscription, which covers every name, the answer depends on
// the tables alone and is shared.
func differsShared(old, cur *store.Table, sub *subscription) bool {
	if old == nil || !sub.wildcard {
		return len(changedNames(old, cur, sub)) > 0
	}
	return differMemo.get(old, cur, func() bool { return len(changedNames(old, cur, sub)) > 0 })
}

// goneShared returns the entries of old that cur no longer holds.
func goneShared(old, cur *store.Table) []*store.Entry {
	return goneMemo.get(old, cur, func() []*store.Entry {
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

// allChangedShared is allChanged(old, r.Resources), shared when r holds its whole
// table.
func allChangedShared(old *store.Table, r *Response) bool {
	if old == nil || !r.full {
		return allChanged(old, r.Resources)
	}
	return changedMemo.get(old, r.table, func() bool { return allChanged(old, r.Resources) })
}

// subscribedShared is s.subscribed, shared between streams of one interned
// subscription reading the same tables. The slice is read-only.
func (s *machine) subscribedShared(v store.View, ts *typeState, cur *store.Table) []*store.Entry {
	if ts.sub.set == nil || ts.sub.wildcard || len(ts.sub.globs) > 0 {
		return s.subscribed(v, ts, cur)
	}
	k := digestKey{set: ts.sub.set, cur: cur}
	if ts.typeURL == protocol.TypeEndpoint {
		k.cds = v.Table(s.Scope, protocol.TypeCluster)
	}
	entriesMemo.mu.Lock()
	e, ok := entriesMemo.m[k]
	entriesMemo.mu.Unlock()
	if ok {
		return e
	}
	e = slices.Clip(s.subscribed(v, ts, cur))
	entriesMemo.mu.Lock()
	if entriesMemo.m == nil || len(entriesMemo.m) >= maxDigests {
		entriesMemo.m = make(map[digestKey][]*store.Entry)
	}
	entriesMemo.m[k] = e
	entriesMemo.mu.Unlock()
	return e
}

// usedShared returns the EDS service names the clusters of t use (for a
// cluster table) or the route names its listeners use (for a listener table).
// It depends on t alone and is shared; the set is read-only.
func usedShared(t *store.Table) map[string]struct{} {
	return usesMemo.get(nil, t, func() map[string]struct{} {
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
