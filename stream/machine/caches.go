package machine

import (
	"hash/maphash"
	"sync"
	"weak"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// Caches are what the state machines of many streams share: the work that
// depends only on store tables and subscriptions every stream of a fleet has in
// common, done once instead of once per stream. The server that owns the
// streams makes one Caches and passes it to each machine; two servers share
// nothing. A machine made without one (nil) gets caches of its own.
//
// Each cache is bounded, and none keeps alive what its entries are about: they
// hold tables, name sets and entries weakly, and forget an entry when what it is
// about is collected.
//
//   - subscriptions (sets): equal sets of subscribed names, one per set in use;
//     a set no subscription uses is collected and leaves the table.
//   - request names (names): the resource names of SotW requests, while in use,
//     at most maxSharedNameBytes of names and maxSharedLists lists.
//   - answers about tables (digests, differ, uses, gone, changed, entries): at
//     most maxAnswers each; an answer goes with the newest table it is about,
//     and a full memo starts afresh.
//   - explicit empty assignments (empty, P2): one entry per EDS service name
//     some response or stream holds, at most maxEmptyAssignments; an entry goes
//     once nothing holds it.
//
// A Caches is safe for concurrent use: it is the only part of a machine with
// locks, and they are held for a lookup, never across a computation.
type Caches struct {
	sets  *internTable
	names *nameTable

	digests memo[protocol.Digest]
	differ  memo[bool]
	uses    memo[map[string]struct{}]
	gone    memo[[]*store.Entry]
	changed memo[bool]
	entries memo[[]*store.Entry]

	empty emptyAssignments
}

// NewCaches returns empty caches, for the machines of one server.
func NewCaches() *Caches {
	return &Caches{
		sets:  &internTable{seed: maphash.MakeSeed(), sets: map[uint64][]weak.Pointer[nameSet]{}},
		names: newNameTable(Limits{}),
		empty: emptyAssignments{m: map[string]weak.Pointer[store.Entry]{}},
	}
}

// orNew returns c, or new caches when c is nil.
func orNew(c *Caches) *Caches {
	if c == nil {
		return NewCaches()
	}
	return c
}

// emptyAssignments shares the explicit empty assignment of each EDS service
// (P2) between streams, so that responses holding it are one frame.
type emptyAssignments struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[store.Entry]
}

// maxEmptyAssignments bounds the empty assignments shared; past it, a new one
// is made for its response alone.
const maxEmptyAssignments = 1 << 16
