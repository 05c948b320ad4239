package store

import (
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"time"
)

// RollbackTo commits, in one commit, every scope the history keeps back to its
// content at revision rev: the entries it held then, as they were (not
// validated or encoded again: the same bytes, so the same versions, S3, D8,
// R24),
// and nothing else; a scope created after rev is emptied. The commit is a new
// revision, labelled source ("" is recorded as "rollback to <rev>"), and is
// itself in the history, so a rollback can be rolled back.
//
// If the history of a scope no longer reaches rev (KeepHistory, Hold), or rev
// is past the store's revision, RollbackTo changes nothing and its error names
// each such scope and the oldest revision its history keeps. A rollback to
// the content the store holds changes nothing (Result.Changed is false).
//
// It costs what it changes: tables and trie branches shared between the
// current content and rev's are skipped by pointer.
func (s *Store) RollbackTo(rev uint64, source string) (Result, error) {
	if source == "" {
		source = fmt.Sprintf("rollback to %d", rev)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	old := s.cur.Load()
	if rev > old.rev {
		return Result{Revision: old.rev}, fmt.Errorf("rollback to revision %d: the store is at revision %d", rev, old.rev)
	}
	scopes := slices.Sorted(mapKeys(old.hist))
	targets := make([]*Scope, len(scopes))
	var errs []error
	for i, scope := range scopes {
		h := old.hist[scope]
		j, empty, ok := h.at(rev)
		if !ok {
			errs = append(errs, fmt.Errorf("scope %q: its history keeps revisions from %d on", scope, h.oldest()))
			continue
		}
		if !empty {
			targets[i] = h[j].content
		}
	}
	if len(errs) > 0 {
		return Result{Revision: old.rev}, fmt.Errorf("rollback to revision %d refused, nothing changed: %w", rev, errors.Join(errs...))
	}
	b := newBuilder(old)
	for i, scope := range scopes {
		cur, target := old.scopes[scope], targets[i]
		if cur == target {
			continue
		}
		for typeURL := range unionTables(cur, target) {
			k := key{scope, typeURL}
			from, to := scopeTable(cur, typeURL), scopeTable(target, typeURL)
			for was, is := range from.Diff(to) {
				if is == nil {
					b.table(k).remove(was.Name)
					b.res.Deleted++
					continue
				}
				b.table(k).put(is) // the entry as it was: same bytes, version, references
				b.res.Set++
			}
		}
	}
	if !b.res.Changed() {
		b.res.Revision = old.rev
		return b.res, nil
	}
	next := b.build(old.rev+1, time.Now())
	s.record(b, next, source, nil)
	s.publish(next, b.changedKeys())
	return b.res, nil
}

// Hold keeps the content scope had at revision rev in the history, however
// many newer revisions follow (KeepHistory), until release is called; release
// may be called more than once. Holding the same revision twice keeps it until
// both are released. It fails, naming the oldest revision kept, when the
// history of scope no longer reaches rev. A released revision past the newest
// K is dropped at the scope's next commit. Hold and release take the writer
// lock: do not call them from a CommitOptions.Check.
func (s *Store) Hold(scope string, rev uint64) (release func(), err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	h := s.cur.Load().hist[scope]
	if _, _, ok := h.at(rev); !ok {
		return nil, fmt.Errorf("hold of revision %d of scope %q: its history keeps revisions from %d on", rev, scope, h.oldest())
	}
	if s.holds[scope] == nil {
		s.holds[scope] = map[uint64]int{}
	}
	s.holds[scope][rev]++
	released := false
	return func() {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		if released {
			return
		}
		released = true
		if s.holds[scope][rev]--; s.holds[scope][rev] <= 0 {
			delete(s.holds[scope], rev)
			if len(s.holds[scope]) == 0 {
				delete(s.holds, scope)
			}
		}
	}, nil
}

// Diff yields every resource whose entry differs between t and u: the entry
// in t and the entry in u, nil where the table does not hold it, in no
// particular order. Tables that share structure, as a table and those of its
// history do, cost what differs between them: trie branches and leaves that
// are the same are skipped by pointer.
func (t *Table) Diff(u *Table) iter.Seq2[*Entry, *Entry] {
	return func(yield func(*Entry, *Entry) bool) {
		if t == u || t.dir == u.dir {
			return
		}
		var none trie
		dt, du := t.dir, u.dir
		if dt == nil {
			dt = &none
		}
		if du == nil {
			du = &none
		}
		for bi := range fan {
			bt, bu := dt[bi], du[bi]
			if bt == bu {
				continue
			}
			for li := range fan {
				var lt, lu leaf
				if bt != nil {
					lt = bt[li]
				}
				if bu != nil {
					lu = bu[li]
				}
				if sameLeaf(lt, lu) {
					continue
				}
				for n, e := range lt {
					if f := lu[n]; f != e && !yield(e, f) {
						return
					}
				}
				for n, f := range lu {
					if _, in := lt[n]; !in && !yield(nil, f) {
						return
					}
				}
			}
		}
	}
}

// sameLeaf reports whether a and b are the same map (or both empty).
func sameLeaf(a, b leaf) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// scopeTable is sc's table of typeURL, or the empty table.
func scopeTable(sc *Scope, typeURL string) *Table {
	if sc != nil {
		if t := sc.tables[typeURL]; t != nil {
			return t
		}
	}
	return emptyTable
}

// unionTables yields the type URLs of the tables of a and b, once each.
func unionTables(a, b *Scope) iter.Seq[string] {
	return func(yield func(string) bool) {
		if a != nil {
			for u := range a.tables {
				if !yield(u) {
					return
				}
			}
		}
		if b != nil {
			for u := range b.tables {
				if a != nil && a.tables[u] != nil {
					continue
				}
				if !yield(u) {
					return
				}
			}
		}
	}
}

func mapKeys[V any](m map[string]V) iter.Seq[string] {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// PastCommit is a commit of a store's history as a snapshot recorded it, for
// Replay.
type PastCommit struct {
	// Revision is the commit's revision.
	Revision uint64
	// At is when it was published.
	At time.Time
	// Changes make the scopes it changed hold the content they had after it.
	Changes []Change
	// Revisions are the history's records of it, one per scope, as recorded
	// (Scope, Source, Summary, First, Until, and At, which defaults to the
	// commit's; Revision, content and Resources are the commit's). A scope
	// the changes change that has none is recorded with the source "restore".
	Revisions []Revision
}

// Replay commits, in order, commits of a store's history as a snapshot
// recorded them, and publishes the state after the last one, at revision head
// (at least the last commit's): the store continues that history's revision
// numbering, and its history holds each replayed revision with its number,
// time, source and summary, as recorded (not trimmed to KeepHistory until the
// scope's next commit). Entries a later commit does not change are shared
// with the earlier revisions, as a store's history shares them.
//
// It is how persist.Restore brings a snapshot's history back, before the
// store serves: the store must be at a revision below the first commit's (a
// new store is at 0), and revisions must grow. Every change is prepared as a
// commit's (SetEncoded decodes and validates what the store does not hold).
// Any error changes nothing. Result counts what every commit did; its
// Revision is head.
func (s *Store) Replay(head uint64, commits []PastCommit) (Result, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	start := s.cur.Load()
	last := start.rev
	for _, pc := range commits {
		if pc.Revision <= last {
			return Result{Revision: start.rev}, fmt.Errorf("replay: revision %d follows revision %d", pc.Revision, last)
		}
		last = pc.Revision
	}
	if head < last {
		return Result{Revision: start.rev}, fmt.Errorf("replay: head revision %d is below revision %d", head, last)
	}
	cur := start
	var total Result
	changed := map[key]struct{}{}
	scopes := map[string]struct{}{}
	for _, pc := range commits {
		sc := s.getScratch(len(pc.Changes))
		err := sc.prepare(cur, pc.Changes)
		if err != nil {
			s.putScratch(sc)
			return Result{Revision: start.rev}, fmt.Errorf("replay of revision %d: %w", pc.Revision, err)
		}
		b := newBuilder(cur)
		b.private = cur != start // cur is a step's own root: reuse its maps
		b.apply(sc)
		s.putScratch(sc)
		next := b.build(pc.Revision, pc.At)
		given := make(map[string]Revision, len(pc.Revisions))
		for _, r := range pc.Revisions {
			given[r.Scope] = r
		}
		s.record(b, next, "restore", given)
		for _, k := range b.changedKeys() {
			changed[k] = struct{}{}
			scopes[k.scope] = struct{}{}
		}
		total.Set += b.res.Set
		total.Deleted += b.res.Deleted
		total.Unchanged += b.res.Unchanged
		cur = next
	}
	if cur.rev != head {
		c := *cur // shares start's maps when there were no steps: not modified
		c.rev = head
		cur = &c
	}
	total.Revision = head
	if len(scopes) > 0 {
		total.Scopes = slices.Sorted(mapKeys(scopes))
	}
	if cur != start {
		keys := make([]key, 0, len(changed))
		for k := range changed {
			keys = append(keys, k)
		}
		s.publish(cur, keys)
	}
	return total, nil
}
