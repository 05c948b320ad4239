// Package store is leanxds's resource store: sharded, lock-free for readers,
// versioned, with atomic multi-type commits and change notification.
//
// # Model
//
// Resources live under (scope, type URL, name). A scope is a group of nodes that
// share one configuration (an Envoy fleet, a tenant); which node belongs to which
// scope is the server's business, not the store's. Each resource is held as an
// immutable Entry: its bytes, encoded once at commit with deterministic marshalling
// and sent as they are to every client; a content version that is a hash of those
// bytes, so the same content has the same version in every process and after every
// restart (S3, D8); and the names of the resources it references (R15, R16),
// all of them and those a client asks this server for.
//
// # Reads
//
// The whole store is one immutable tree reached through a single atomic pointer:
// root → scopes → one Table per (scope, type) → a two-level hash trie of small
// leaf maps → entries. View loads the pointer once; everything reached from it
// stays as it was, so a reader sees every commit whole or not at all and never
// takes a lock.
//
// # Writes
//
// A commit is a list of changes: Set, SetNamed, SetResource and SetEncoded put
// a resource, Delete removes one, ReplaceScope makes the commit the whole
// content of a scope. Commit prepares every change before it takes the writer
// lock, so a bad resource rejects the whole commit and changes nothing; under
// the lock it copies only the path to each changed entry (root map, scope map,
// table, trie root, one branch, one leaf) and publishes the new tree with one
// pointer swap.
//
// A commit costs what it changes, plus, for each resource it gives, exactly
// this:
//
//   - Set, SetNamed: its type and name read from the message, one
//     deterministic encoding of the message into a buffer the store reuses
//     between commits, one lookup of the name in the current table, and one
//     comparison of the encoding with the entry's bytes.
//   - SetResource of a resource resources validated (a loaded file): the same
//     without the encoding, made once when the resource was validated
//     (resources.Resource.Encoded).
//   - SetEncoded (a restored snapshot): one lookup and one byte comparison.
//   - Every Set: one slot in the commit's working memory (the name set that
//     finds a name set twice and tells ReplaceScope what the scope keeps, and
//     the list of prepared Sets), which the store reuses between commits
//     through a sync.Pool: it is allocated again (sized for the commit) only
//     after the Go runtime dropped it, and grown only for a commit larger than
//     those before it. Emptying it costs what the commit used, or, for a
//     commit of at least an eighth of the largest it served, a clear of it.
//
// A resource whose encoding is the one the store holds stops there: it was
// validated when it was committed, its references are those of the entry, and
// it neither bumps a version nor wakes a watcher (so a proxy never drains a
// listener for nothing). Only a changed resource is validated
// (resources.Validate; not again for a resource resources already validated,
// see SetResource), has its references worked out (once, both
// resources.References and resources.ServedReferences), is encoded into bytes
// of its own (SetResource's encoding is kept as it is) and gets an Entry;
// SetEncoded decodes it first and encodes it again, as this build encodes it
// (D8).
//
// ReplaceScope deletes what the commit does not set. For each table of the
// scope the commit counts how many of the names it sets the table already
// held; only a table where that count falls short of the table's size is
// walked, to find what to delete. A whole-scope commit that changes or adds
// resources therefore costs O(given resources) comparisons and O(changed)
// allocations, encodings and publishing, and one that deletes from a table
// adds a walk of that table, O(table).
//
// Publishing costs O(scopes + changed resources × leaf size) (leaves hold about
// n/4096 entries of an n-entry table): it does not grow with the tables a
// commit does not touch. BenchmarkCommitOne, BenchmarkReplaceScopeOne (raw
// messages), BenchmarkReplaceScopeOneLoaded (validated resources) and
// persist's BenchmarkRestoreOne measure one changed resource among 1,000,
// 10,000 and 100,000.
//
// Another commit may be published while a commit is prepared. The Sets found
// unchanged are then checked again under the lock against the new state, one
// pointer comparison each, and those whose entry changed meanwhile are prepared
// again.
//
// CommitWith (and CommitChecked) shows a check the view the commit would
// publish before it is published: a source refuses content by what the scope
// would hold as a whole, such as the references it leaves dangling
// (View.Dangling, which reads the references kept in each entry: O(resources
// of the scope)). Result.Scopes names the scopes a commit changed.
//
// Each table carries the revision of the commit that last changed it, a digest of
// its whole content (the XOR of its entries' digests, kept up to date in O(1) per
// change) and a log of recent changes, so "which names changed since revision r"
// is answered in O(changes) for recent r; for an r older than the log the answer
// says so and the caller compares contents.
//
// # History and rollback
//
// The store keeps, per scope, the last K revisions of its content
// (KeepHistory, default 10), with the root: each Revision holds its number,
// time, source (CommitOptions.Source), resource count, a Summary of what the
// commit changed (counts, and the first names), and the scope's content then.
// Revisions share every table, trie branch, leaf and entry they have in common,
// so holding one costs what differs from the newer ones; a commit adds O(K)
// pointers per scope it changes, and the summary costs O(changed)
// (BenchmarkCommitHistory compares K=1 and K=10). View.History,
// View.Revisions and View.ScopeAt read a view without locks, as every read.
//
// RollbackTo commits, in one commit, every scope's content as of a revision,
// with the very entries it held then: the same bytes, so every client is sent
// the versions it held before (S3, D8). It builds new tables holding those
// entries (so that the change log of each table stays true) and costs what
// differs: Table.Diff skips shared branches and leaves by pointer. A scope
// whose history no longer reaches the revision makes it fail, changing
// nothing. Hold keeps a revision beyond K until released (a rollout's base);
// the revisions dropped between it and the newest K are recorded
// (Revision.Until), so a revision is never answered by content it did not
// have.
//
// Replay brings a history recorded elsewhere (persist's snapshots) back into
// a new store, keeping its revision numbers, times, sources and summaries; the
// store then continues that numbering.
//
// # Notification
//
// A Watcher watches (scope, type) pairs and gets one coalesced signal on its
// channel after each commit that changes one of them. Commit only queues the
// changed pairs; a notifier goroutine, running only while there is something to
// signal, does the non-blocking sends, so neither a slow watcher nor a hundred
// thousand of them slow a commit down. Watch before reading the View, so that no
// commit falls between the read and the watch.
//
// Rule ids (R15, S3, D8, X1, ...) refer to the project's rule list,
// conformance/RULES.md.
package store
