package store

// Option configures a Store (New).
type Option func(*options)

type options struct {
	// keep is how many revisions of each scope's content the history keeps.
	keep int
}

// DefaultKeepHistory is how many revisions of each scope the store keeps by
// default (KeepHistory).
const DefaultKeepHistory = 10

// KeepHistory makes the store keep, per scope, the last n revisions of its
// content (n ≥ 1; a smaller n is taken as 1): the newest is the scope's
// current content, the others are what View.History, View.ScopeAt and
// RollbackTo can go back to. The default is DefaultKeepHistory. Holding them
// costs what differs between them: tables and entries are shared.
func KeepHistory(n int) Option {
	return func(o *options) { o.keep = max(n, 1) }
}

// CommitOptions are the options of CommitWith.
type CommitOptions struct {
	// Source labels the commit in the history ("dir /etc/leanxds", "etcd gen
	// 4"); "" is recorded as "commit".
	Source string
	// Check, if not nil, is called under the writer lock, before the commit is
	// published, with the view the commit would publish (the current one when
	// the commit changes nothing) and what it did. If it returns an error the
	// commit is dropped, nothing changes, and CommitWith returns that error. It
	// runs while other commits wait: it must not commit to the same store.
	Check func(next View, res Result) error
}
