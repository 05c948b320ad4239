// Package source keeps a store.Store equal to where its content comes from.
//
// A Source commits what it reads to its store, each change as one atomic
// store.Commit, and keeps the last good content served when what it reads is
// bad: an operator sees why in its Status. There are two: Etcd, a prefix of
// etcd shared by replicas (etcd.go, docs/etcd.md), and Dir, a watched config
// directory (docs/config.md):
//
//	DIR/*.yaml, *.yml, *.json        the default scope
//	DIR/NAME/*.yaml, *.yml, *.json   scope NAME
//
// What a load of a directory does, in order:
//
//   - content.go lists and reads the files, within the size limits
//     (DirOptions.MaxFileBytes, MaxDirBytes), and parses and validates every
//     resource (resources.Parse), skipping a client's bootstrap and refusing an
//     Envoy static config (resources.BootstrapError); any error rejects the
//     whole directory. Every
//     file is read and hashed on each reload, but only the files whose bytes
//     changed since the last one are parsed again (parseCache);
//   - refs.go refuses a resource that refers to one its scope does not define
//     (or warns about it, with DirOptions.AllowDangling);
//   - quiet.go puts the load off while a file is being written, or changed
//     while it was read: a file rewritten in place is read whole or not at all;
//   - guard.go holds back a load that would delete most of a type in a scope
//     until it is confirmed (Dir.Reload with confirm);
//   - dir.go commits the directory, every scope replaced whole, and records
//     the outcome in Status (and logs that the config is good again when a
//     load follows a rejected one);
//   - watch.go reloads the directory after a change, debounced, and looks for
//     it again when it is removed.
//
// What a reload costs: reading and hashing every file; parsing the changed
// ones; the store's comparison of every resource with what it holds
// (store.SetResource: a lookup and a byte comparison each, no encoding); and,
// while the store's commit lock is held (other commits to the store wait),
// the dangling-reference check (a lookup per reference of the scope,
// store.View.Dangling) and the deletion guard (a walk of the scope's tables).
// At 100,000 resources in one scope the last two take tens of milliseconds.
//
// What the etcd source does (etcd.go; the keys in etcdkeys.go, addresses and
// client configuration in etcdaddr.go): it lists the current generation at
// one etcd revision and commits it whole, then watches P/current and P/gen/
// (not the rest of the prefix) from the next revision, each revision one commit, in order. A value that is not a
// valid resource (resources.Parse, as for a file) is refused alone: the key's
// last good value stays served. A compaction makes it list again; while etcd
// does not answer, the last good content is served and Status says so.
// With a rollout running (etcdrollout.go: P/rollout/state, read at each
// list), it commits the rollout's base generation before its target and
// tells its EtcdRollouts (package rollout/etcdrollout), which routes nodes.
//
// ApplyEtcd (apply_etcd.go, apply_plan.go; leanxds apply) goes the other way:
// it writes a config directory, checked as CheckDir checks it, to etcd in the
// layout the etcd source reads, as one guarded txn when the change fits etcd's
// limits and as a new generation made current in one txn when it does not;
// a staged change (ApplyOptions.Rollout) always as a new generation, made
// current with P/rollout/state in one txn, its base kept.
//
// Nothing here is package-level mutable state: a Dir or an Etcd is a value its
// owner makes and runs, and two of them in one process share nothing.
package source
