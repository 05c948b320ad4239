package store

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
)

// Change is one part of a commit: build it with Set, SetNamed, Delete or
// ReplaceScope.
type Change struct {
	op       op
	scope    string
	typeURL  string
	name     string
	resource proto.Message
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
}

// Changed reports whether the commit changed anything (and so bumped the revision).
func (r Result) Changed() bool { return r.Set+r.Deleted > 0 }

type key struct{ scope, typeURL string }

func (k key) withName(name string) string { return k.scope + "\x00" + k.typeURL + "\x00" + name }

// prepared is a validated, encoded Set, ready to apply.
type prepared struct {
	key   key
	entry *Entry
}

// prepare validates and encodes every Set of a commit. It runs before the writer
// lock is taken: the expensive part of a commit does not serialise writers.
func prepare(changes []Change) (sets []prepared, deletes []Change, replaces map[string]bool, err error) {
	var errs []error
	seen := make(map[key]map[string]int)
	deleted := make(map[string]int)
	for i, c := range changes {
		switch c.op {
		case opSet:
			p, perr := prepareSet(c)
			if perr != nil {
				errs = append(errs, fmt.Errorf("change #%d: %w", i, perr))
				continue
			}
			names := seen[p.key]
			if names == nil {
				names = make(map[string]int)
				seen[p.key] = names
			}
			if j, dup := names[p.entry.Name]; dup {
				errs = append(errs, fmt.Errorf("change #%d: %s %q in scope %q is also set by change #%d",
					i, protocol.Short(p.key.typeURL), p.entry.Name, c.scope, j))
				continue
			}
			names[p.entry.Name] = i
			sets = append(sets, p)
		case opDelete:
			if _, ok := protocol.Lookup(c.typeURL); !ok {
				errs = append(errs, fmt.Errorf("change #%d: delete of %q: type %q is not served", i, c.name, c.typeURL))
				continue
			}
			c.name = protocol.NormalizeName(c.name)
			deletes = append(deletes, c)
			deleted[key{c.scope, c.typeURL}.withName(c.name)] = i
		case opReplaceScope:
			if replaces == nil {
				replaces = make(map[string]bool)
			}
			replaces[c.scope] = true
		default:
			errs = append(errs, fmt.Errorf("change #%d: empty change (build changes with Set, Delete or ReplaceScope)", i))
		}
	}
	for _, p := range sets {
		if j, ok := deleted[p.key.withName(p.entry.Name)]; ok {
			errs = append(errs, fmt.Errorf("change #%d deletes %s %q in scope %q, which the same commit sets",
				j, protocol.Short(p.key.typeURL), p.entry.Name, p.key.scope))
		}
	}
	if len(errs) > 0 {
		return nil, nil, nil, fmt.Errorf("commit rejected, nothing changed: %w", errors.Join(errs...))
	}
	return sets, deletes, replaces, nil
}

var marshal = proto.MarshalOptions{Deterministic: true}

func prepareSet(c Change) (prepared, error) {
	if c.resource == nil {
		return prepared{}, errors.New("set of a nil resource")
	}
	typeURL, err := resources.TypeURLOf(c.resource)
	if err != nil {
		return prepared{}, err
	}
	name := c.name
	if name == "" {
		name = resources.NameOf(c.resource)
	}
	if name == "" {
		return prepared{}, fmt.Errorf("%s resource has no name (use SetNamed)", protocol.Short(typeURL))
	}
	if err := resources.Validate(typeURL, name, c.resource); err != nil {
		return prepared{}, err
	}
	name = protocol.NormalizeName(name) // X1: one key whatever the order of xdstp parameters
	refs := resources.References(typeURL, c.resource)
	for _, names := range []*[]string{&refs.Routes, &refs.ScopedRoutes, &refs.Clusters, &refs.Endpoints, &refs.Secrets, &refs.ExtensionConfigs} {
		for i, n := range *names {
			(*names)[i] = protocol.NormalizeName(n) // X1: references match the keys they name
		}
	}
	body, err := marshal.Marshal(c.resource)
	if err != nil {
		return prepared{}, fmt.Errorf("%s %q: encoding: %w", protocol.Short(typeURL), name, err)
	}
	version := protocol.ContentVersion(body)
	return prepared{
		key: key{c.scope, typeURL},
		entry: &Entry{
			Name:    name,
			TypeURL: typeURL,
			Body:    body,
			Version: version,
			Digest:  protocol.EntryDigest(name, version),
			Refs:    refs,
		},
	}, nil
}

// builder makes the next root from the current one, copying only what a commit
// touches.
type builder struct {
	old    *root
	scopes map[string]*Scope // scopes copied for this commit
	tables map[key]*tableBuilder
	res    Result
}

type tableBuilder struct {
	t *Table
	// copied marks the branches and leaves already copied by this commit.
	branches [fan]bool
	leaves   map[int]bool
	changed  []string
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
	tb := &tableBuilder{t: t, leaves: make(map[int]bool)}
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

// apply computes the root after a commit. It returns nil when nothing changed.
func (b *builder) apply(sets []prepared, deletes []Change, replaces map[string]bool) *root {
	kept := make(map[key]map[string]bool) // names each replaced scope keeps
	for _, p := range sets {
		if replaces[p.key.scope] {
			if kept[p.key] == nil {
				kept[p.key] = make(map[string]bool)
			}
			kept[p.key][p.entry.Name] = true
		}
		if cur := b.old.table(p.key.scope, p.key.typeURL).Get(p.entry.Name); cur != nil &&
			cur.Version == p.entry.Version && bytes.Equal(cur.Body, p.entry.Body) {
			b.res.Unchanged++ // dedup: same content bumps nothing and wakes nobody
			continue
		}
		b.table(p.key).put(p.entry)
		b.res.Set++
	}
	for _, d := range deletes {
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
	for scope := range replaces {
		s := b.old.scopes[scope]
		if s == nil {
			continue
		}
		for typeURL, t := range s.tables {
			k := key{scope, typeURL}
			for e := range t.All() {
				if kept[k][e.Name] {
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
	if !b.res.Changed() {
		return nil
	}

	rev := b.old.rev + 1
	next := &root{rev: rev, scopes: make(map[string]*Scope, len(b.old.scopes)+1)}
	for name, s := range b.old.scopes {
		next.scopes[name] = s
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
