package store

import (
	"cmp"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/leanxds/leanxds/protocol"
)

// Revision is one revision of one scope's content in the store's history: the
// content a commit that changed the scope left it with, and what the commit
// changed.
type Revision struct {
	// Revision is the store revision of the commit.
	Revision uint64
	// Scope is the scope.
	Scope string
	// At is when the commit was published.
	At time.Time
	// Source labels the commit (CommitOptions.Source): "dir /etc/leanxds",
	// "rollback to 12", "restore".
	Source string
	// Resources is the number of resources the scope held after the commit.
	Resources int
	// Summary is what the commit changed in the scope.
	Summary Summary
	// First is set when the scope held nothing before this revision, and the
	// history knows it (a scope restored from a snapshot without history does
	// not): the history of a scope whose oldest revision is First reaches back
	// to every revision, the scope being empty before it.
	First bool
	// Until, when not zero, is the revision of the next newer revision of the
	// scope, which the history no longer keeps (it kept this one for a Hold):
	// this content is the scope's for the revisions from Revision up to
	// Until, excluded. Zero when the next newer revision kept is the next one.
	Until uint64

	// content is the scope's content at this revision; nil when it is empty.
	content *Scope
}

// Summary says what a commit changed in a scope.
type Summary struct {
	// Added, Changed and Removed count resources new to the scope, given new
	// content, and deleted.
	Added, Changed, Removed int
	// Names are the first MaxSummaryNames of them, in push order (R15) then by
	// name, each as a mark ("+" added, "~" changed, "-" removed), the type's
	// short name and the resource name: "+CDS/web", "~LDS/edge", "-RDS/old".
	Names []string
}

// MaxSummaryNames bounds Summary.Names.
const MaxSummaryNames = 20

// Table returns the resources of one type the scope held at this revision; an
// empty table when there were none.
func (r Revision) Table(typeURL string) *Table {
	if r.content != nil {
		if t := r.content.tables[typeURL]; t != nil {
			return t
		}
	}
	return emptyTable
}

// Tables yields the non-empty tables the scope held at this revision in push
// order (R15), with their type URLs.
func (r Revision) Tables() iter.Seq2[string, *Table] {
	return func(yield func(string, *Table) bool) {
		if r.content == nil {
			return
		}
		for _, t := range protocol.Types() {
			if tab := r.content.tables[t.URL]; tab != nil && tab.count > 0 {
				if !yield(t.URL, tab) {
					return
				}
			}
		}
	}
}

// history is one scope's history, newest first: [0] is its current content.
// A history is never modified once published; a commit makes a new one.
type history []*Revision

// at returns the index of the revision that holds the scope's content as of
// rev: the newest kept at or before rev. empty is set instead when the scope
// held nothing then (rev is older than a First revision). ok is false when the
// history does not reach rev: the revisions that held it were dropped.
func (h history) at(rev uint64) (i int, empty, ok bool) {
	if len(h) == 0 {
		return 0, true, true // the scope never held anything
	}
	for i, r := range h {
		if r.Revision > rev {
			continue
		}
		if r.Until != 0 && rev >= r.Until {
			return 0, false, false
		}
		return i, false, true
	}
	if h[len(h)-1].First {
		return len(h) - 1, true, true
	}
	return 0, false, false
}

// oldest is the oldest revision the history reaches back to: 0 when it
// reaches its beginning.
func (h history) oldest() uint64 {
	if len(h) == 0 || h[len(h)-1].First {
		return 0
	}
	return h[len(h)-1].Revision
}

// History returns the revisions of scope the store keeps, newest first: [0] is
// the scope's current content (when the scope ever held anything). Each
// Revision's Table and Tables read its content.
func (v View) History(scope string) []Revision {
	h := v.r.hist[scope]
	out := make([]Revision, len(h))
	for i, r := range h {
		out[i] = r.clone()
	}
	return out
}

// Revisions returns the revisions the store keeps of every scope, newest first
// (a commit that changed several scopes gives one Revision per scope, by scope
// name).
func (v View) Revisions() []Revision {
	var out []Revision
	for _, h := range v.r.hist {
		for _, r := range h {
			out = append(out, r.clone())
		}
	}
	slices.SortFunc(out, func(a, b Revision) int {
		if c := cmp.Compare(b.Revision, a.Revision); c != 0 {
			return c
		}
		return cmp.Compare(a.Scope, b.Scope)
	})
	return out
}

// clone returns a copy of r whose Names the caller may keep and modify.
func (r *Revision) clone() Revision {
	c := *r
	c.Summary.Names = slices.Clone(r.Summary.Names)
	return c
}

// ScopeAt returns v with scope holding the content it had at revision rev: the
// content of the newest revision kept at or before rev (empty when the scope
// was created after rev). Every other scope and the history are v's. When the
// content differs from v's, the view's Revision is rev (v's when rev is past
// it): a node served it runs the scope as of rev, and is judged by that
// (stream.Server.Applied), not as running v. ok is false, and the view v, when
// the history of scope does not reach rev. Tables and entries are shared with
// the history: it costs a copy of the view's scope map.
func (v View) ScopeAt(scope string, rev uint64) (View, bool) {
	h := v.r.hist[scope]
	i, empty, ok := h.at(rev)
	if !ok {
		return v, false
	}
	var content *Scope
	if !empty {
		content = h[i].content
	}
	if v.r.scopes[scope] == content {
		return v, true
	}
	next := *v.r
	next.rev = min(rev, v.r.rev)
	next.scopes = maps.Clone(v.r.scopes)
	if content == nil {
		delete(next.scopes, scope)
	} else {
		next.scopes[scope] = content
	}
	return View{&next}, true
}

// record adds to next's history a revision for each scope b changed, labelled
// source, and for each scope of given (which Replay passes, as a snapshot
// recorded them; a replayed history is kept as recorded, not trimmed). It
// copies the history map and, per scope, K pointers.
func (s *Store) record(b *builder, next *root, source string, given map[string]Revision) {
	if !b.private {
		next.hist = maps.Clone(b.old.hist)
	}
	if next.hist == nil {
		next.hist = map[string]history{}
	}
	add := func(scope string, r *Revision) {
		r.Scope, r.Revision, r.content = scope, next.rev, next.scopes[scope]
		if r.At.IsZero() {
			r.At = next.committed
		}
		if r.content != nil {
			r.Resources = r.content.count
		} else {
			r.Resources = 0
		}
		old := b.old.hist[scope]
		h := make(history, 0, min(len(old)+1, s.keep+1))
		h = append(h, r)
		h = append(h, old...)
		if given == nil {
			h = s.trim(scope, h)
		} // else a replay: the history as it was recorded, trimmed then
		next.hist[scope] = h
	}
	// The tables each scope changed, found in one pass: a commit of many
	// scopes costs what it changed, not scopes × tables.
	keys := make(map[string][]key, len(b.scopes))
	for k := range b.tables {
		keys[k.scope] = append(keys[k.scope], k)
	}
	for scope := range b.scopes {
		if g, ok := given[scope]; ok {
			add(scope, &g)
			continue
		}
		add(scope, &Revision{At: next.committed, Source: source, Summary: b.summary(keys[scope]),
			First: given == nil && len(b.old.hist[scope]) == 0})
	}
	for scope, g := range given {
		if _, done := b.scopes[scope]; !done {
			add(scope, &g)
		}
	}
}

// trim drops from h, newest first, what the history no longer keeps: every
// revision past the newest s.keep, but those that hold a revision a Hold keeps.
// A revision kept after a dropped one is copied with Until set. The writer
// lock is held.
func (s *Store) trim(scope string, h history) history {
	if len(h) <= s.keep {
		return h
	}
	var pinned map[int]bool
	for rev := range s.holds[scope] {
		if i, _, ok := h.at(rev); ok && i >= s.keep {
			if pinned == nil {
				pinned = map[int]bool{}
			}
			pinned[i] = true
		}
	}
	out := h[:s.keep:s.keep]
	for i := s.keep; i < len(h); i++ {
		if !pinned[i] {
			continue
		}
		r := h[i]
		if dropped := i-1 >= s.keep && !pinned[i-1]; dropped && r.Until == 0 {
			c := *r
			c.Until = h[i-1].Revision
			r = &c
		}
		out = append(out, r)
	}
	return out
}

// summary says what the commit b built changed in the tables of keys (those
// of one scope). It costs O(changed) lookups, and keeps the first
// MaxSummaryNames names by insertion.
func (b *builder) summary(keys []key) Summary {
	var sum Summary
	var top []summaryName // the first names, sorted by push order then name
	for _, k := range keys {
		tb := b.tables[k]
		old := tb.old
		for _, n := range tb.changed {
			was, is := old.Get(n), tb.t.Get(n)
			var mark byte
			switch {
			case was == nil && is != nil:
				sum.Added++
				mark = '+'
			case was != nil && is == nil:
				sum.Removed++
				mark = '-'
			case was != is:
				sum.Changed++
				mark = '~'
			default:
				continue
			}
			sn := summaryName{typeURL: k.typeURL, name: n, mark: mark}
			if len(top) == MaxSummaryNames && !sn.less(top[len(top)-1]) {
				continue
			}
			i := len(top)
			for i > 0 && sn.less(top[i-1]) {
				i--
			}
			top = slices.Insert(top, i, sn)
			if len(top) > MaxSummaryNames {
				top = top[:MaxSummaryNames]
			}
		}
	}
	if len(top) > 0 {
		sum.Names = make([]string, len(top))
		for i, sn := range top {
			sum.Names[i] = string(sn.mark) + protocol.Short(sn.typeURL) + "/" + sn.name
		}
	}
	return sum
}

// summaryName is a name of Summary.Names before it is formatted.
type summaryName struct {
	typeURL, name string
	mark          byte
}

func (a summaryName) less(b summaryName) bool {
	if a.typeURL != b.typeURL {
		return protocol.PushOrder(a.typeURL, b.typeURL) < 0
	}
	return a.name < b.name
}
