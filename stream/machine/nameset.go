package machine

import (
	"hash/maphash"
	"maps"
	"runtime"
	"slices"
	"sync"
	"weak"

	"github.com/leanxds/leanxds/protocol"
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
