package store

import (
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leanxds/leanxds/protocol"
)

// Store holds the resources leanxds serves, by scope, type URL and name. Reads
// never lock; commits are serialised. The zero Store is not usable: call New.
type Store struct {
	// cur is the published root: readers load it, the writer swaps it.
	cur atomic.Pointer[root]
	// writeMu serialises commits.
	writeMu sync.Mutex
	// scratch keeps commits' working memory (*scratch) for the next commits.
	scratch sync.Pool

	watch watchers

	// keep is how many revisions of each scope the history keeps (KeepHistory).
	keep int
	// holds counts, per scope and revision, the Holds not released yet: the
	// history keeps the content of those revisions beyond keep. Guarded by
	// writeMu.
	holds map[string]map[uint64]int
}

// root is one published state of the whole store.
type root struct {
	// rev counts the commits that changed something.
	rev    uint64
	scopes map[string]*Scope
	// committed is when this root was published.
	committed time.Time
	// hist is each scope's history, newest first (history.go). A commit copies
	// the map and the histories of the scopes it changes; the records and the
	// content they point to are shared and never change.
	hist map[string]history
}

func (r *root) table(scope, typeURL string) *Table {
	if s := r.scopes[scope]; s != nil {
		if t := s.tables[typeURL]; t != nil {
			return t
		}
	}
	return emptyTable
}

// Scope is an immutable view of the resources of one scope, every type.
type Scope struct {
	tables map[string]*Table
	// count is the number of resources of every type.
	count int
}

// New returns an empty store.
func New(opts ...Option) *Store {
	o := options{keep: DefaultKeepHistory}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Store{keep: o.keep, holds: map[string]map[uint64]int{}}
	s.cur.Store(&root{scopes: map[string]*Scope{}, hist: map[string]history{}})
	return s
}

// Commit applies changes atomically: readers see all of them or none. Every Set is
// checked first; if any change is invalid the commit is rejected whole with an
// error naming each bad resource, and nothing changes. A resource set to the
// content it already has changes nothing (dedup): a commit that changes nothing
// bumps no revision and wakes no watcher.
//
// Watchers of each changed (scope, type) are signalled after Commit returns, by a
// goroutine of the store's: Commit's cost does not grow with their number.
func (s *Store) Commit(changes ...Change) (Result, error) {
	return s.CommitChecked(nil, changes...)
}

// CommitChecked is Commit with a last check: CommitWith with
// CommitOptions.Check.
func (s *Store) CommitChecked(check func(next View, res Result) error, changes ...Change) (Result, error) {
	return s.CommitWith(CommitOptions{Check: check}, changes...)
}

// CommitWith is Commit with options: a label for the history (Source) and a
// last check of the view the commit would publish (Check). A source refuses
// content by what the scope would hold as a whole, such as its dangling
// references (View.Dangling), through Check, without building the state twice.
func (s *Store) CommitWith(o CommitOptions, changes ...Change) (Result, error) {
	return s.commit(s.cur.Load(), o, changes)
}

// commit prepares changes against base, then applies them to the current root
// under the writer lock, preparing again the Sets found unchanged in base whose
// entry another commit changed since.
func (s *Store) commit(base *root, o CommitOptions, changes []Change) (Result, error) {
	sc := s.getScratch(len(changes))
	defer s.putScratch(sc)
	if err := sc.prepare(base, changes); err != nil {
		return Result{Revision: base.rev}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	b := newBuilder(s.cur.Load())
	if b.old != base {
		if err := sc.recheck(b.old, changes); err != nil {
			return Result{Revision: b.old.rev}, err
		}
	}
	if !b.apply(sc) {
		b.res.Revision = b.old.rev
		if o.Check != nil {
			if err := o.Check(View{b.old}, b.res); err != nil {
				return Result{Revision: b.old.rev}, err
			}
		}
		return b.res, nil
	}
	source := o.Source
	if source == "" {
		source = "commit"
	}
	next := b.build(b.old.rev+1, time.Now())
	s.record(b, next, source, nil)
	if o.Check != nil {
		if err := o.Check(View{next}, b.res); err != nil {
			return Result{Revision: b.old.rev}, err
		}
	}
	s.publish(next, b.changedKeys())
	return b.res, nil
}

// publish makes next the store's state and queues the signals of the changed
// (scope, type) pairs. The writer lock is held.
func (s *Store) publish(next *root, changed []key) {
	s.cur.Store(next)
	if len(changed) > 0 {
		s.watch.notify(changed)
	}
}

// View returns the current state of the store: an immutable snapshot that later
// commits do not change. Taking one costs an atomic load.
func (s *Store) View() View { return View{s.cur.Load()} }

// View is an immutable snapshot of the whole store.
type View struct{ r *root }

// Revision counts the commits that changed the store up to this view.
func (v View) Revision() uint64 { return v.r.rev }

// CommittedAt is when the commit that made this view was published (zero for an
// empty store).
func (v View) CommittedAt() time.Time { return v.r.committed }

// Table returns the resources of one type in one scope; an empty table when there
// are none.
func (v View) Table(scope, typeURL string) *Table { return v.r.table(scope, typeURL) }

// HasScope reports whether scope holds at least one resource.
func (v View) HasScope(scope string) bool {
	s := v.r.scopes[scope]
	return s != nil && s.count > 0
}

// Scopes returns the names of the scopes that hold at least one resource, sorted.
func (v View) Scopes() []string {
	var out []string
	for name, s := range v.r.scopes {
		if s.count > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Tables yields the non-empty tables of a scope in push order (R15), with their
// type URLs.
func (v View) Tables(scope string) iter.Seq2[string, *Table] {
	return func(yield func(string, *Table) bool) {
		s := v.r.scopes[scope]
		if s == nil {
			return
		}
		for _, t := range protocol.Types() {
			if tab := s.tables[t.URL]; tab != nil && tab.count > 0 {
				if !yield(t.URL, tab) {
					return
				}
			}
		}
	}
}
