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
// restart (S3, D8); and the names of the resources it references (R15, R16).
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
// Commit validates and encodes every resource before taking the writer lock, so a
// bad resource rejects the whole commit and changes nothing. Under the lock it
// copies only the path to each changed entry (root map, scope map, table, trie
// root, one branch, one leaf), drops entries whose bytes did not change (an
// unchanged resource never bumps a version, so a proxy never drains a listener for
// nothing), and publishes the new tree with one pointer swap. A commit therefore
// costs O(scopes + changed resources × leaf size), not O(all resources).
//
// Each table carries the revision of the commit that last changed it, a digest of
// its whole content (the XOR of its entries' digests, kept up to date in O(1) per
// change) and a log of recent changes, so "which names changed since revision r"
// is answered in O(changes) for recent r; for an r older than the log the answer
// says so and the caller compares contents.
//
// # Notification
//
// A Watcher watches (scope, type) pairs and gets one coalesced signal on its
// channel after each commit that changes one of them. Commit only queues the
// changed pairs; a notifier goroutine, running only while there is something to
// signal, does the non-blocking sends, so neither a slow watcher nor a hundred
// thousand of them slow a commit down. Watch before reading the View, so that no
// commit falls between the read and the watch.
package store
