package machine

import (
	"errors"
	"hash/maphash"
	"runtime"
	"sync"
	"unicode/utf8"
	"unsafe"
	"weak"
)

// Shared request names
//
// An Envoy repeats its whole list of names, a thousand EDS services, in every
// request of the type, and a fleet names the same services: decoding them as new
// strings would allocate a thousand strings per ACK per stream. The server's
// codec decodes them with the name table of its Caches instead
// (Caches.UnmarshalRequest): a list seen recently is reused whole, and other
// names come from a table of names.
//
// Both hold what they share weakly. A name stays shared while something uses it
// (a subscription, a request being applied) and leaves the table when it is
// collected, so a client that goes away takes its names with it; the table is
// bounded in bytes too. The codec measures a request's names against the
// default Limits before it decodes any of them: names over them are not
// shared, only decoded as gRPC's codec would, for the server's Limits (which
// the state machine checks) to accept or refuse. Either way, what a refused
// request named is not kept.

// nameTable shares the resource names of SotW requests.
type nameTable struct {
	// limits are what a request's names must be within to be shared.
	limits Limits
	seed   maphash.Seed
	// maxBytes bounds bytes: maxSharedNameBytes.
	maxBytes int

	mu sync.RWMutex
	// names are the shared names, by hash. Two names of one hash are rare: the
	// second is simply not shared.
	names map[uint64]sharedName
	// bytes is the cost of the names in names: their bytes and
	// sharedNameOverhead each.
	bytes int
	// lists are recently decoded lists of names, by hash of the whole list.
	lists map[uint64]sharedList
}

// sharedName is a name held weakly: its bytes, and their length.
type sharedName struct {
	data weak.Pointer[byte]
	n    int
}

// sharedList is a list of names held weakly: its first element, and its length.
type sharedList struct {
	first weak.Pointer[string]
	n     int
}

const (
	// maxSharedNameBytes bounds the bytes of the names the table shares, and so
	// the size of the table itself; past it, new names are decoded unshared.
	maxSharedNameBytes = 64 << 20
	// sharedNameOverhead is what the table costs per name beyond its bytes:
	// the entry, the weak pointer and the cleanup that removes it.
	sharedNameOverhead = 128
	// maxSharedLists bounds lists; past it, it starts afresh.
	maxSharedLists = 256
)

func newNameTable(limits Limits) *nameTable {
	return &nameTable{
		limits:   limits,
		seed:     maphash.MakeSeed(),
		maxBytes: maxSharedNameBytes,
		names:    make(map[uint64]sharedName),
		lists:    make(map[uint64]sharedList),
	}
}

func (t *nameTable) hash(b []byte) uint64 { return maphash.Bytes(t.seed, b) }

// value returns the shared string of sn if it is still alive and spells b.
func (sn sharedName) value(b []byte) (string, bool) {
	if sn.n != len(b) {
		return "", false
	}
	p := sn.data.Value()
	if p == nil {
		return "", false
	}
	if s := unsafe.String(p, sn.n); s == string(b) {
		return s, true
	}
	return "", false
}

// lookupLocked returns the shared string spelling b, if there is one. It needs
// t.mu, for reading at least.
func (t *nameTable) lookupLocked(b []byte) (string, bool) {
	if len(b) <= 1 {
		// Go keeps every string of one byte in a static table: nothing to share.
		return string(b), true
	}
	return t.names[t.hash(b)].value(b)
}

// intern returns a string spelling b, shared when the table has room, checking
// that a name it has not seen is valid UTF-8 as proto.Unmarshal would.
func (t *nameTable) intern(b []byte) (string, error) {
	t.mu.RLock()
	s, ok := t.lookupLocked(b)
	t.mu.RUnlock()
	if ok {
		return s, nil
	}
	if !utf8.Valid(b) {
		return "", errInvalidName
	}
	s = string(b)
	k := t.hash(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.names[k]
	if had {
		if shared, ok := old.value(b); ok {
			return shared, nil // interned meanwhile by another stream
		}
		if old.data.Value() != nil {
			return s, nil // another live name of the same hash
		}
	}
	cost := len(s) + sharedNameOverhead
	if had {
		cost -= old.n + sharedNameOverhead
	}
	if t.bytes+cost > t.maxBytes {
		return s, nil
	}
	t.bytes += cost
	data := unsafe.StringData(s)
	t.names[k] = sharedName{data: weak.Make(data), n: len(s)}
	runtime.AddCleanup(data, t.forget, k)
	return s, nil
}

// errInvalidName is what proto.Unmarshal says of a name that is not UTF-8.
var errInvalidName = errors.New("resource_names: string field contains invalid UTF-8")

// forget removes the entry of hash k once its name has been collected.
func (t *nameTable) forget(k uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sn, ok := t.names[k]; ok && sn.data.Value() == nil {
		delete(t.names, k)
		t.bytes -= sn.n + sharedNameOverhead
	}
}

// list returns the shared list of hash k, if it is alive and holds count names.
func (t *nameTable) list(k uint64, count int) []string {
	t.mu.RLock()
	sl, ok := t.lists[k]
	t.mu.RUnlock()
	if !ok || sl.n != count {
		return nil
	}
	if p := sl.first.Value(); p != nil {
		return unsafe.Slice(p, sl.n)
	}
	return nil
}

// keepList shares names as the list of hash k.
func (t *nameTable) keepList(k uint64, names []string) {
	if len(names) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lists) >= maxSharedLists {
		clear(t.lists)
	}
	t.lists[k] = sharedList{first: weak.Make(&names[0]), n: len(names)}
	runtime.AddCleanup(&names[0], t.forgetList, k)
}

// forgetList removes the list of hash k once it has been collected.
func (t *nameTable) forgetList(k uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sl, ok := t.lists[k]; ok && sl.first.Value() == nil {
		delete(t.lists, k)
	}
}

// size reports how many names the table shares and their bytes, for tests.
func (t *nameTable) size() (names, lists, bytes int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.names), len(t.lists), t.bytes
}
