package load

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// registry is what the clients of one worker share: every resource name seen,
// numbered, and every distinct set of names clients subscribe to, so that ten
// thousand clients subscribed to the same thousand clusters hold one list, not ten
// thousand. Clients refer to names by number.
type registry struct {
	mu    sync.RWMutex
	index map[string]int32
	names []string
	sets  map[uint64][]*nameSet
	// edsOf maps a cluster to its EDS service, routesOf a listener to its route
	// configurations: what delta clients need to remember of resources they were
	// sent only once.
	edsOf    map[int32]int32
	routesOf map[int32][]int32
	versions map[string]string
	seed     maphash.Seed
}

func newRegistry() *registry {
	return &registry{
		index: map[string]int32{}, sets: map[uint64][]*nameSet{},
		edsOf: map[int32]int32{}, routesOf: map[int32][]int32{},
		versions: map[string]string{}, seed: maphash.MakeSeed(),
	}
}

// id returns the number of a name, numbering it if new.
func (r *registry) id(b []byte) int32 {
	r.mu.RLock()
	i, ok := r.index[string(b)]
	r.mu.RUnlock()
	if ok {
		return i
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.index[string(b)]; ok {
		return i
	}
	i = int32(len(r.names))
	s := string(b)
	r.index[s] = i
	r.names = append(r.names, s)
	return i
}

// lookup returns the number of a name, or -1 for a name never seen.
func (r *registry) lookup(s string) int32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if i, ok := r.index[s]; ok {
		return i
	}
	return -1
}

func (r *registry) name(i int32) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.names[i]
}

// version returns a shared copy of a version string.
func (r *registry) version(b []byte) string {
	r.mu.RLock()
	v, ok := r.versions[string(b)]
	r.mu.RUnlock()
	if ok {
		return v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.versions) > 1<<16 {
		clear(r.versions) // bounded: versions of a long run come and go
	}
	v = string(b)
	r.versions[v] = v
	return v
}

func (r *registry) setEDS(cluster, eds int32) {
	r.mu.Lock()
	r.edsOf[cluster] = eds
	r.mu.Unlock()
}

func (r *registry) setRoutes(listener int32, routes []int32) {
	r.mu.Lock()
	r.routesOf[listener] = slices.Clone(routes)
	r.mu.Unlock()
}

// nameSet is an immutable, shared set of names, sorted by name.
type nameSet struct {
	ids []int32
	// sotw is the set as the resource_names fields of a SotW request.
	sotw []byte
}

var emptySet = &nameSet{}

// set returns the shared set of the names numbered ids; it sorts ids by name, as
// Envoy sorts the names of a request, and dedups them, in place.
func (r *registry) set(ids []int32) *nameSet {
	r.mu.RLock()
	slices.SortFunc(ids, func(a, b int32) int { return cmp.Compare(r.names[a], r.names[b]) })
	r.mu.RUnlock()
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return emptySet
	}
	var h maphash.Hash
	h.SetSeed(r.seed)
	for _, i := range ids {
		h.Write([]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
	}
	k := h.Sum64()
	r.mu.RLock()
	for _, s := range r.sets[k] {
		if slices.Equal(s.ids, ids) {
			r.mu.RUnlock()
			return s
		}
	}
	r.mu.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sets[k] {
		if slices.Equal(s.ids, ids) {
			return s
		}
	}
	s := &nameSet{ids: slices.Clone(ids)}
	for _, i := range ids {
		s.sotw = protowire.AppendTag(s.sotw, 3, protowire.BytesType)
		s.sotw = protowire.AppendString(s.sotw, r.names[i])
	}
	r.sets[k] = append(r.sets[k], s)
	return s
}

// diff returns the names in b and not in a, and those in a and not in b (both
// sorted by name).
func (r *registry) diff(a, b *nameSet) (added, removed []string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i, j := 0, 0
	for i < len(a.ids) || j < len(b.ids) {
		switch {
		case j == len(b.ids) || (i < len(a.ids) && r.names[a.ids[i]] < r.names[b.ids[j]]):
			removed = append(removed, r.names[a.ids[i]])
			i++
		case i == len(a.ids) || r.names[b.ids[j]] < r.names[a.ids[i]]:
			added = append(added, r.names[b.ids[j]])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}

// bits is a set of name numbers.
type bits []uint64

func (b *bits) set(i int32) {
	w := int(i >> 6)
	if w >= len(*b) {
		*b = slices.Grow(*b, w+1-len(*b))[:w+1]
	}
	(*b)[w] |= 1 << (uint(i) & 63)
}

func (b bits) has(i int32) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(uint(i)&63)) != 0
}

// covers reports whether every name of s is in b.
func (b bits) covers(s *nameSet) bool {
	for _, i := range s.ids {
		if !b.has(i) {
			return false
		}
	}
	return true
}
