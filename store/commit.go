package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
)

// Change is one part of a commit: build it with Set, SetNamed, SetResource,
// SetEncoded, Delete or ReplaceScope.
type Change struct {
	op       op
	scope    string
	typeURL  string
	name     string
	resource proto.Message
	// body is the resource's encoding: SetEncoded's (encoded is set), decoded
	// only when it differs from what the store holds, or, with resource,
	// SetResource's, made when resources validated it.
	body    []byte
	encoded bool
	// validated is set by SetResource for a resource resources.Validate
	// accepted under this name: the store does not validate it again, and
	// takes refs, worked out then, as its references.
	validated bool
	refs      *resources.CheckedRefs
}

type op uint8

const (
	opSet op = iota + 1
	opDelete
	opReplaceScope
)

// Set puts a resource into scope under its own name (Listener.name,
// ClusterLoadAssignment.cluster_name, ...). The type comes from the message.
func Set(scope string, m proto.Message) Change {
	return Change{op: opSet, scope: scope, resource: m}
}

// SetNamed puts a resource into scope under the given name; needed for types whose
// message carries no name (LbEndpoint, for LEDS).
func SetNamed(scope, name string, m proto.Message) Change {
	return Change{op: opSet, scope: scope, name: name, resource: m}
}

// SetResource puts a resource read by resources.Parse or Load, or checked by
// resources.Check, into scope under r.Name. Such a resource was validated
// already (r.Validated()), so the store does not validate it again; any other
// Resource is validated as SetNamed's.
//
// Its encoding, made when it was validated (r.Encoded), is what the store
// compares with what it holds: a resource loaded again unchanged costs a
// lookup and a byte comparison, and is not encoded again.
func SetResource(scope string, r resources.Resource) Change {
	return Change{op: opSet, scope: scope, name: r.Name, resource: r.Message, validated: r.Validated(), body: r.Encoded(), refs: r.References()}
}

// SetEncoded puts a resource given as its protobuf encoding (the value of a
// google.protobuf.Any of type typeURL) into scope under name, as a restored
// snapshot holds it. When body is the encoding the store holds for that name
// the change costs one byte comparison; otherwise the resource is decoded,
// validated and encoded again deterministically, as Set's. The store keeps no
// reference to body or name.
func SetEncoded(scope, typeURL, name string, body []byte) Change {
	return Change{op: opSet, scope: scope, typeURL: typeURL, name: name, body: body, encoded: true}
}

// Delete removes the named resource of a type from scope; deleting what does not
// exist changes nothing.
func Delete(scope, typeURL, name string) Change {
	return Change{op: opDelete, scope: scope, typeURL: typeURL, name: name}
}

// ReplaceScope makes the commit hold the whole content of scope: every resource of
// the scope that the same commit does not Set is deleted. ReplaceScope alone empties
// the scope. It is how a source that always has the full picture (a config
// directory, a restored snapshot) commits.
func ReplaceScope(scope string) Change {
	return Change{op: opReplaceScope, scope: scope}
}

// Result says what a commit did.
type Result struct {
	// Revision is the store revision after the commit; unchanged when nothing changed.
	Revision uint64
	// Set counts resources added or given new content.
	Set int
	// Deleted counts resources removed.
	Deleted int
	// Unchanged counts resources set to the content they already had (dedup).
	Unchanged int
	// Scopes are the scopes the commit changed, sorted; nil when it changed
	// nothing.
	Scopes []string
}

// Changed reports whether the commit changed anything (and so bumped the revision).
func (r Result) Changed() bool { return r.Set+r.Deleted > 0 }

type key struct{ scope, typeURL string }

// nameKey is one resource's place in the store.
type nameKey struct{ scope, typeURL, name string }

// prepared is a Set, resolved against the store.
type prepared struct {
	key  key
	name string
	// entry is the new entry, validated and encoded; nil when the Set gives
	// the content the store held when it was prepared (same).
	entry *Entry
	// same is the entry whose content the Set repeats, when entry is nil.
	same *Entry
	// idx is the Set's position in the commit, to prepare it again if the
	// store changes before the commit takes the writer lock.
	idx int
}

// scratch is the working memory of one commit, kept by the store between
// commits (Store.scratch) so that a commit of n resources that changes few does
// not allocate in proportion to n.
type scratch struct {
	sets    []prepared
	deletes []Change
	// names maps every name a Set of the commit gives to its change's index:
	// it finds repeated Sets and, for ReplaceScope, what the scope keeps.
	names map[nameKey]int
	// namesHigh is the most names the map held (what clear costs).
	namesHigh int
	// deleted maps every name a Delete of the commit gives to its index.
	deleted  map[nameKey]int
	replaces map[string]bool
	// buf holds a Set's encoding while it is compared with the store's.
	buf []byte
}

// maxKeptBuf bounds the encoding buffer a scratch keeps between commits.
const maxKeptBuf = 1 << 20

// getScratch returns the working memory for a commit of n changes: one a
// commit before left, or a new one sized for n.
func (s *Store) getScratch(n int) *scratch {
	sc, ok := s.scratch.Get().(*scratch)
	if !ok {
		return &scratch{sets: make([]prepared, 0, n), names: make(map[nameKey]int, n),
			deleted: map[nameKey]int{}, replaces: map[string]bool{}}
	}
	sc.sets = slices.Grow(sc.sets, n)
	return sc
}

// putScratch keeps sc for a later commit. clear costs what the largest
// commit the map served needed; a commit much smaller than that empties the
// map key by key instead, which costs what it used.
func (s *Store) putScratch(sc *scratch) {
	if n := len(sc.names); n*8 >= sc.namesHigh {
		sc.namesHigh = max(sc.namesHigh, n)
		clear(sc.names)
	} else {
		for _, p := range sc.sets {
			delete(sc.names, nameKey{p.key.scope, p.key.typeURL, p.name})
		}
	}
	for _, d := range sc.deletes {
		delete(sc.deleted, nameKey{d.scope, d.typeURL, d.name})
	}
	for scope := range sc.replaces {
		delete(sc.replaces, scope)
	}
	clear(sc.sets) // drop the references to entries
	sc.sets = sc.sets[:0]
	clear(sc.deletes)
	sc.deletes = sc.deletes[:0]
	if cap(sc.buf) > maxKeptBuf {
		sc.buf = nil
	}
	s.scratch.Put(sc)
}

// prepare checks every change of a commit, and resolves every Set against base,
// the store as it was when the commit began. It runs before the writer lock is
// taken: the expensive part of a commit does not serialise writers.
//
// A Set whose encoding is the one base holds under its name is recorded as the
// same content, at the cost of one deterministic encoding into sc.buf (none for
// SetEncoded) and one byte comparison: it is neither validated nor given an
// entry, since what the store holds was validated when it was committed. Any
// other Set is validated (unless SetResource says it was), its references are
// worked out, and it gets its entry.
func (sc *scratch) prepare(base *root, changes []Change) error {
	var errs []error
	for i, c := range changes {
		switch c.op {
		case opSet:
			p, err := sc.prepareSet(base, c, i)
			if err != nil {
				errs = append(errs, fmt.Errorf("change #%d: %w", i, err))
				continue
			}
			nk := nameKey{p.key.scope, p.key.typeURL, p.name}
			if j, dup := sc.names[nk]; dup {
				errs = append(errs, fmt.Errorf("change #%d: %s %q in scope %q is also set by change #%d",
					i, protocol.Short(p.key.typeURL), p.name, c.scope, j))
				continue
			}
			sc.names[nk] = i
			sc.sets = append(sc.sets, p)
		case opDelete:
			if _, ok := protocol.Lookup(c.typeURL); !ok {
				errs = append(errs, fmt.Errorf("change #%d: delete of %q: type %q is not served", i, c.name, c.typeURL))
				continue
			}
			c.name = protocol.NormalizeName(c.name)
			sc.deletes = append(sc.deletes, c)
			sc.deleted[nameKey{c.scope, c.typeURL, c.name}] = i
		case opReplaceScope:
			sc.replaces[c.scope] = true
		default:
			errs = append(errs, fmt.Errorf("change #%d: empty change (build changes with Set, Delete or ReplaceScope)", i))
		}
	}
	for _, d := range sc.deletes {
		if _, set := sc.names[nameKey{d.scope, d.typeURL, d.name}]; set {
			errs = append(errs, fmt.Errorf("change #%d deletes %s %q in scope %q, which the same commit sets",
				sc.deleted[nameKey{d.scope, d.typeURL, d.name}], protocol.Short(d.typeURL), d.name, d.scope))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("commit rejected, nothing changed: %w", errors.Join(errs...))
	}
	return nil
}

// recheck resolves again, against cur, the Sets prepare found unchanged in an
// older root: another commit may have changed their entries since. Only those
// whose entry changed are prepared again.
func (sc *scratch) recheck(cur *root, changes []Change) error {
	var errs []error
	for i := range sc.sets {
		p := &sc.sets[i]
		if p.entry != nil || cur.table(p.key.scope, p.key.typeURL).Get(p.name) == p.same {
			continue
		}
		q, err := sc.prepareSet(cur, changes[p.idx], p.idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("change #%d: %w", p.idx, err))
			continue
		}
		*p = q
	}
	if len(errs) > 0 {
		return fmt.Errorf("commit rejected, nothing changed: %w", errors.Join(errs...))
	}
	return nil
}

var marshal = proto.MarshalOptions{Deterministic: true}

// prepareSet resolves one Set against base (see prepare).
func (sc *scratch) prepareSet(base *root, c Change, idx int) (prepared, error) {
	typeURL, name, err := c.target()
	if err != nil {
		return prepared{}, err
	}
	norm := protocol.NormalizeName(name) // X1: one key whatever the order of xdstp parameters
	p := prepared{key: key{c.scope, typeURL}, name: norm, idx: idx}
	cur := base.table(c.scope, typeURL).Get(norm)

	// The cheap path: the store holds this very encoding under this name. A
	// message whose own name is not the name it is set under is not taken (it
	// is invalid, and Validate below says so).
	m, enc := c.resource, c.body
	var encErr error
	if m != nil {
		if enc == nil {
			sc.buf, encErr = marshal.MarshalAppend(sc.buf[:0], m)
			enc = sc.buf
		}
		if own := resources.NameOf(m); own != "" && own != name {
			cur = nil
		}
	}
	if cur != nil && encErr == nil && bytes.Equal(cur.Body, enc) {
		p.same = cur
		return p, nil
	}

	if m == nil {
		if m, err = resources.Decode(typeURL, c.body); err != nil {
			return prepared{}, fmt.Errorf("%s %q: %w", protocol.Short(typeURL), name, err)
		}
		name, norm = strings.Clone(name), strings.Clone(norm) // name may alias the caller's buffer
		p.name = norm
		// This build's encoding, which may differ from the one given (D8).
		sc.buf, encErr = marshal.MarshalAppend(sc.buf[:0], m)
		enc = sc.buf
	}
	if !c.validated {
		if err := resources.Validate(typeURL, name, m); err != nil {
			return prepared{}, err
		}
	}
	if encErr != nil {
		return prepared{}, fmt.Errorf("%s %q: encoding: %w", protocol.Short(typeURL), name, encErr)
	}
	body := enc
	if c.resource == nil || c.body == nil {
		body = bytes.Clone(sc.buf) // the scratch buffer is reused
	} // else SetResource's encoding, immutable: shared, not copied
	var refs, served resources.Refs
	if c.refs != nil && c.body != nil {
		// SetResource's: as validated, consistent with the encoding committed.
		refs, served = cloneRefs(c.refs.All), cloneRefs(c.refs.Served)
	} else {
		refs, served = resources.ReferencesAndServed(typeURL, m)
	}
	normalizeRefs(&refs)
	var servedOwn *resources.Refs // nil: every reference is served, the common case
	if !slices.Equal(refs.Routes, served.Routes) || !slices.Equal(refs.ScopedRoutes, served.ScopedRoutes) ||
		!slices.Equal(refs.Endpoints, served.Endpoints) || !slices.Equal(refs.Secrets, served.Secrets) ||
		!slices.Equal(refs.ExtensionConfigs, served.ExtensionConfigs) || !slices.Equal(refs.Clusters, served.Clusters) {
		normalizeRefs(&served)
		servedOwn = &served
	}
	version := protocol.ContentVersion(body)
	p.entry = &Entry{
		Name:    norm,
		TypeURL: typeURL,
		Body:    body,
		Version: version,
		Digest:  protocol.EntryDigest(norm, version),
		Refs:    refs,
		served:  servedOwn,
	}
	return p, nil
}

// target returns the type URL and the name (as given, not normalised) of a Set.
func (c Change) target() (typeURL, name string, err error) {
	if c.resource == nil && !c.encoded {
		return "", "", errors.New("set of a nil resource")
	}
	typeURL, name = c.typeURL, c.name
	if c.resource != nil {
		if typeURL, err = resources.TypeURLOf(c.resource); err != nil {
			return "", "", err
		}
		if name == "" {
			name = resources.NameOf(c.resource)
		}
	} else if !resources.Known(typeURL) {
		return "", "", fmt.Errorf("%q: %w", typeURL, resources.ErrUnknownType)
	}
	if name == "" {
		return "", "", fmt.Errorf("%s resource has no name (use SetNamed)", protocol.Short(typeURL))
	}
	return typeURL, name, nil
}

// normalizeRefs normalises every referenced name in place (X1: references match
// the keys they name).
func normalizeRefs(refs *resources.Refs) {
	for _, names := range []*[]string{&refs.Routes, &refs.ScopedRoutes, &refs.Clusters, &refs.Endpoints, &refs.Secrets, &refs.ExtensionConfigs} {
		for i, n := range *names {
			(*names)[i] = protocol.NormalizeName(n)
		}
	}
}

// builder makes the next root from the current one, copying only what a commit
// touches.
type builder struct {
	old    *root
	scopes map[string]*Scope // scopes copied for this commit
	tables map[key]*tableBuilder
	res    Result
	// private is set when old was never published and is never read again
	// (Replay's steps): the next root takes over its maps instead of copying
	// them, so a step costs what it changes, not O(scopes).
	private bool
}

type tableBuilder struct {
	t *Table
	// old is the table t replaces.
	old *Table
	// copied marks the branches and leaves already copied by this commit.
	branches [fan]bool
	leaves   map[int]bool
	changed  []string
}

func newBuilder(old *root) *builder {
	return &builder{old: old, scopes: map[string]*Scope{}, tables: map[key]*tableBuilder{}}
}

// changedKeys returns the (scope, type) pairs the commit changed.
func (b *builder) changedKeys() []key {
	out := make([]key, 0, len(b.tables))
	for k := range b.tables {
		out = append(out, k)
	}
	return out
}

func (b *builder) table(k key) *tableBuilder {
	if tb := b.tables[k]; tb != nil {
		return tb
	}
	old := b.old.table(k.scope, k.typeURL)
	t := &Table{rev: old.rev, count: old.count, digest: old.digest, log: old.log, dir: new(trie)}
	if old.dir != nil {
		*t.dir = *old.dir
	}
	tb := &tableBuilder{t: t, old: old, leaves: make(map[int]bool)}
	b.tables[k] = tb
	return tb
}

// leafFor returns the writable leaf of name, copying its branch and leaf the first
// time this commit touches them.
func (tb *tableBuilder) leafFor(name string) leaf {
	bi, li := slot(name)
	if !tb.branches[bi] {
		var br branch
		if old := tb.t.dir[bi]; old != nil {
			br = *old
		}
		tb.t.dir[bi] = &br
		tb.branches[bi] = true
	}
	br := tb.t.dir[bi]
	id := bi<<fanBits | li
	if !tb.leaves[id] {
		lf := make(leaf, len(br[li])+1)
		for n, e := range br[li] {
			lf[n] = e
		}
		br[li] = lf
		tb.leaves[id] = true
	}
	return br[li]
}

func (tb *tableBuilder) put(e *Entry) {
	lf := tb.leafFor(e.Name)
	if old := lf[e.Name]; old != nil {
		tb.t.digest ^= old.Digest
	} else {
		tb.t.count++
	}
	lf[e.Name] = e
	tb.t.digest ^= e.Digest
	tb.changed = append(tb.changed, e.Name)
}

func (tb *tableBuilder) remove(name string) {
	lf := tb.leafFor(name)
	old := lf[name]
	delete(lf, name)
	tb.t.count--
	tb.t.digest ^= old.Digest
	tb.changed = append(tb.changed, name)
}

// apply makes the changes of the Sets, Deletes and ReplaceScopes sc prepared
// to the tables of b, and reports whether anything changed (then build makes
// the next root).
//
// A Set found unchanged costs nothing here. A ReplaceScope deletes what the
// commit does not set: for each table of the scope, it counts the names the
// commit sets that the table holds, and walks the table to find what to delete
// only when that count falls short of the table's size. A ReplaceScope that
// deletes nothing therefore costs O(1) per table, and one that deletes from a
// table costs O(that table).
func (b *builder) apply(sc *scratch) bool {
	var present map[key]int // per table of a replaced scope: how many of its names the commit sets
	if len(sc.replaces) > 0 {
		present = make(map[key]int)
	}
	for _, p := range sc.sets {
		if p.entry == nil {
			b.res.Unchanged++ // dedup: same content bumps nothing and wakes nobody
			if present != nil {
				present[p.key]++
			}
			continue
		}
		cur := b.old.table(p.key.scope, p.key.typeURL).Get(p.name)
		if cur != nil && present != nil {
			present[p.key]++
		}
		if cur != nil && cur.Version == p.entry.Version && bytes.Equal(cur.Body, p.entry.Body) {
			b.res.Unchanged++
			continue
		}
		b.table(p.key).put(p.entry)
		b.res.Set++
	}
	for _, d := range sc.deletes {
		k := key{d.scope, d.typeURL}
		if b.old.table(k.scope, k.typeURL).Get(d.name) == nil {
			continue
		}
		if tb := b.tables[k]; tb != nil && tb.t.Get(d.name) == nil {
			continue
		}
		b.table(k).remove(d.name)
		b.res.Deleted++
	}
	for scope := range sc.replaces {
		s := b.old.scopes[scope]
		if s == nil {
			continue
		}
		for typeURL, t := range s.tables {
			k := key{scope, typeURL}
			if present[k] == t.count {
				continue // the commit sets every name the table holds
			}
			for e := range t.All() {
				if _, kept := sc.names[nameKey{scope, typeURL, e.Name}]; kept {
					continue
				}
				if tb := b.tables[k]; tb != nil && tb.t.Get(e.Name) == nil {
					continue // deleted by an explicit Delete of the same commit
				}
				b.table(k).remove(e.Name)
				b.res.Deleted++
			}
		}
	}
	return b.res.Changed()
}

// build returns the root after the changes made to b's tables, at revision rev,
// committed at at. Its history is the old root's until record adds to it.
func (b *builder) build(rev uint64, at time.Time) *root {
	next := &root{rev: rev, committed: at, scopes: b.old.scopes, hist: b.old.hist}
	if !b.private {
		next.scopes = make(map[string]*Scope, len(b.old.scopes)+1)
		for name, s := range b.old.scopes {
			next.scopes[name] = s
		}
	}
	for k, tb := range b.tables {
		for _, e := range tb.changedEntries() {
			e.Revision = rev
		}
		tb.t.rev = rev
		tb.t.log = tb.t.log.appended(rev, tb.changed)
		s := b.scopes[k.scope]
		if s == nil {
			s = &Scope{tables: make(map[string]*Table)}
			if old := b.old.scopes[k.scope]; old != nil {
				for u, t := range old.tables {
					s.tables[u] = t
				}
			}
			b.scopes[k.scope] = s
			next.scopes[k.scope] = s
		}
		s.tables[k.typeURL] = tb.t
	}
	for _, s := range b.scopes {
		s.count = 0
		for _, t := range s.tables {
			s.count += t.count
		}
	}
	b.res.Revision = rev
	b.res.Scopes = make([]string, 0, len(b.scopes))
	for name := range b.scopes {
		b.res.Scopes = append(b.res.Scopes, name)
	}
	slices.Sort(b.res.Scopes)
	return next
}

// changedEntries returns the entries this commit set (not the deleted names).
func (tb *tableBuilder) changedEntries() []*Entry {
	var out []*Entry
	for _, n := range tb.changed {
		if e := tb.t.Get(n); e != nil && e.Revision == 0 {
			out = append(out, e)
		}
	}
	return out
}

// cloneRefs copies r, which normalizeRefs would otherwise change in place.
func cloneRefs(r resources.Refs) resources.Refs {
	return resources.Refs{
		Routes: slices.Clone(r.Routes), ScopedRoutes: slices.Clone(r.ScopedRoutes),
		Clusters: slices.Clone(r.Clusters), Endpoints: slices.Clone(r.Endpoints),
		Secrets: slices.Clone(r.Secrets), ExtensionConfigs: slices.Clone(r.ExtensionConfigs),
	}
}
