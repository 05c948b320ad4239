package store

import (
	"cmp"
	"iter"
	"slices"
	"sync/atomic"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
)

// Entry is one resource as committed: immutable once published, shared by every
// reader. Body is never modified; callers must not modify it either.
type Entry struct {
	// Name is the resource name (for LEDS, the name it was committed under).
	Name string
	// TypeURL is the resource's type URL.
	TypeURL string
	// Body is the resource's deterministic protobuf encoding, made once at commit
	// and sent as is to every client (the value of the google.protobuf.Any).
	Body []byte
	// Version is the content version: a hash of Body, stable across restarts (S3, D8).
	Version string
	// Digest is protocol.EntryDigest(Name, Version): this entry's share of a set digest.
	Digest protocol.Digest
	// Refs names the resources this one uses (R15 push order, R16, debug dumps).
	Refs resources.Refs
	// served is the part of Refs a client fetches from this server, when it
	// is not all of Refs (see ServedRefs).
	served *resources.Refs
	// Revision is the store revision of the commit that gave the entry this
	// content. A rollback (RollbackTo) puts the entry back as it was, this
	// revision included.
	Revision uint64
}

// ServedRefs is the part of Refs a client fetches from this server
// (resources.ServedReferences): what the scope must hold for the resource to
// work (View.Dangling). Worked out with Refs, once, when the entry was committed.
func (e *Entry) ServedRefs() resources.Refs {
	if e.served != nil {
		return *e.served
	}
	return e.Refs
}

// The entries of one (scope, type) live in a two-level hash trie of fan×fan leaves.
// A commit copies the root array, one branch and one leaf map per changed name, so
// its cost is O(changed names × leaf size) and leaves stay small (≈ n/4096 entries)
// however many resources the table holds.
const (
	fanBits = 6
	fan     = 1 << fanBits
)

type (
	leaf   map[string]*Entry
	branch [fan]leaf
	trie   [fan]*branch
)

// slot returns the branch and leaf index of a name (FNV-1a, inlined so that a
// lookup does not allocate).
func slot(name string) (b, l int) {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h >> (32 - fanBits)), int(h>>(32-2*fanBits)) & (fan - 1)
}

// Table is an immutable view of the resources of one type in one scope.
// The zero of a missing table is an empty Table, never nil.
type Table struct {
	// rev is the revision of the last commit that changed this table (0: never).
	rev uint64
	// count is the number of entries.
	count int
	// digest is the XOR of every entry's Digest: the set's content version.
	digest protocol.Digest
	// dir is the trie root; nil while the table has never held an entry.
	dir *trie
	// log records recent changes for ChangedSince.
	log changeLog
	// sorted caches Sorted's answer: the table never changes, so it is computed
	// once, by the first reader that asks, and shared.
	sorted atomic.Pointer[[]*Entry]
	// since caches the newest answer of ChangedSince: after a commit, every stream
	// asks the new table the same question (what changed since the table it was
	// sent), so it is answered once.
	since atomic.Pointer[sinceAnswer]
}

type sinceAnswer struct {
	rev   uint64
	names []string
	ok    bool
}

var emptyTable = &Table{}

// Revision is the store revision of the last commit that changed this table; 0 when
// it never held anything.
func (t *Table) Revision() uint64 { return t.rev }

// Len is the number of resources in the table.
func (t *Table) Len() int { return t.count }

// Digest is the content digest of the whole table: equal digests, equal content.
func (t *Table) Digest() protocol.Digest { return t.digest }

// Get returns the named entry, or nil.
func (t *Table) Get(name string) *Entry {
	if t.dir == nil {
		return nil
	}
	b, l := slot(name)
	if br := t.dir[b]; br != nil {
		return br[l][name]
	}
	return nil
}

// All yields every entry, in no particular order.
func (t *Table) All() iter.Seq[*Entry] {
	return func(yield func(*Entry) bool) {
		if t.dir == nil {
			return
		}
		for _, br := range t.dir {
			if br == nil {
				continue
			}
			for _, lf := range br {
				for _, e := range lf {
					if !yield(e) {
						return
					}
				}
			}
		}
	}
}

// Sorted returns every entry ordered by name. The slice is computed once per table
// and shared by every caller: do not modify it.
func (t *Table) Sorted() []*Entry {
	if p := t.sorted.Load(); p != nil {
		return *p
	}
	out := make([]*Entry, 0, t.count)
	for e := range t.All() {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Entry) int { return cmp.Compare(a.Name, b.Name) })
	t.sorted.Store(&out)
	return out
}

// ChangedSince returns, in O(changes), the names set or deleted by commits after
// revision rev (look each up with Get: nil means deleted), sorted and without
// repeats. ok is false when rev is older than the changes the table remembers; the
// caller then compares full contents instead.
//
// A table knows only the changes that led to it: for a rev past its own
// revision (a reader going from a newer table to an older one, as a view of
// the history, View.ScopeAt, may make it), ok is false too.
//
// The slice may be shared with other callers: do not modify it.
func (t *Table) ChangedSince(rev uint64) (names []string, ok bool) {
	if rev > t.rev {
		return nil, false
	}
	if a := t.since.Load(); a != nil && a.rev == rev {
		return a.names, a.ok
	}
	names, ok = t.log.since(rev)
	names = slices.Clip(names) // an append by a caller copies
	t.since.Store(&sinceAnswer{rev: rev, names: names, ok: ok})
	return names, ok
}
