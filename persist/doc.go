// Package persist keeps snapshots of a store, so that after a restart, or while
// its config source is failing, leanxds serves the last good configuration at
// once. Versions derive from content (S3, D8), so a restored resource has the
// version it had before the restart, and a proxy that reconnects naming what it
// holds is sent nothing new (S3, D3; over SotW, what it names is sent again at
// the version it holds, S6).
//
// The parts:
//
//   - format.go, encode.go, decode.go: the snapshot format (Encode, Decode,
//     ContentDigest), its checks and its bounds.
//   - backend.go, file.go, s3.go: where snapshots live (Backend, Open).
//   - restore.go: loading a snapshot into a store before serving (Restore).
//   - persister.go, metrics.go: writing the store periodically and at shutdown
//     (Persister), and its Prometheus metrics.
//
// # Format
//
// A snapshot is one byte string:
//
//	offset  size  content
//	0       8     magic "LXDSSNAP"
//	8       4     format version, big-endian uint32 (FormatVersion, 2; 1 is read too)
//	12      8     body length n, big-endian uint64
//	20      n     body
//	20+n    32    SHA-256 of bytes [0, 20+n)
//
// The body is protobuf wire format, written with protowire: first the header
// (when written and by whom, the lineage revision, the time of the store's last
// commit, the number of resources, the store revision of every table, and the
// SHA-256 of the content section), then the content section: one message per
// scope, sorted by name, holding one message per type in push order (R15),
// holding one message per entry, sorted by name, with the entry's name, content
// version and deterministic encoding (its bytes as the store holds and serves
// them). Version 2 adds, after the content section, the store's history
// (store.View.History): one message per scope, sorted by name, holding its
// revisions newest first, each with its number, time, source, resource count
// and summary, and, but for the newest (which is the content), the resources
// it held that the next newer revision does not hold as they were and the
// names it did not hold: a difference, so K revisions cost what they changed,
// not K copies. Then one message per named attachment (Meta.Attachments,
// Persister.SetAttachment), sorted by name. Encode is deterministic: the same
// content, history, attachments and header fields give the same bytes, and
// the content section, hence the content digest, depends on the content alone.
// Version 1 is version 2 without history and attachments.
//
// Decode checks before it parses, in this order, and its error names the check
// that failed: magic (ErrMagic), format version (ErrFormatVersion), length, for
// a truncated file or one with bytes after its checksum (ErrLength), checksum
// (ErrChecksum); then the body must parse, every type be served by this build,
// and the content match the digest in the header (ErrBody). A version 2
// snapshot's history must be consistent (revisions in order, the newest
// holding what the content holds) and, as its attachments, within the bounds
// that limit what a snapshot can make the server hold: MaxHistoryRevisions,
// MaxHistoryEntries, MaxSourceBytes, MaxAttachments, MaxAttachmentName and
// MaxAttachmentBytes. Encode and SetAttachment keep within them, so a
// snapshot past one was written by something else, and is refused.
//
// # Backends
//
// A Backend reads, writes and sets aside one snapshot. Open picks one by URL:
//
//	file:///var/lib/leanxds/snapshot.bin        (?keep=N previous snapshots, default 3)
//	s3://bucket/key?region=eu-west-1
//	s3://bucket/key?endpoint=http://127.0.0.1:7070   (S3-compatible store, path-style)
//
// The file backend writes a temporary file in the snapshot's directory, syncs
// it, renames it over the snapshot and syncs the directory, so a crash leaves
// the old snapshot or the new one. It keeps the previous snapshots as
// snapshot.bin.1 (the newest) to snapshot.bin.N: to roll back by hand, stop the
// server and rename snapshot.bin.1 to snapshot.bin. Open refuses a directory that
// does not exist or cannot be written into, so a bad --snapshot fails at start.
//
// The S3 backend uses the AWS SDK's standard credential chain (environment,
// shared config and credentials files, web identity, container and instance
// roles). Every write is conditional: If-Match with the ETag last read or
// written, or If-None-Match: * when no object was seen, so two replicas sharing
// a key never silently overwrite each other. A write that loses gets
// ErrConflict; the Persister then re-reads the snapshot there and decides: the
// same content is left alone, a newer snapshot (higher lineage revision; at
// equal revisions, later last commit) is kept and the conflict logged, an older
// one is replaced, and one that fails its checks is set aside and replaced.
//
// The S3 backend needs s3:GetObject and s3:PutObject on the key and on
// <key>.corrupt-*, and s3:ListBucket on the bucket, without which S3 answers a
// missing key with 403 rather than 404 and a first start reports a read error
// instead of "no snapshot". The store must support conditional writes (AWS S3
// does; so does versitygw, used by the tests).
//
// A snapshot holds every resource, TLS secrets (SDS) included: the file backend
// creates it with mode 0600; give an S3 bucket the access policy and encryption
// its content needs.
//
// # Restore
//
// Restore, run before the server accepts streams, makes the store hold exactly
// the snapshot's content, published at once, and checks that each resource,
// re-encoded, has the content version recorded (a resource that does not is
// kept, counted in Info.Mismatched, and will be resent). The config source then
// commits as usual: content it has unchanged is deduplicated against the
// restored entries, so nothing is pushed again.
//
// Into a store that has not passed the snapshot's revisions (a new one), it
// brings back the history too, replaying it (store.Replay): every revision
// keeps its number, time, source and summary, entries unchanged between
// revisions are shared again, and the store continues the numbering from the
// snapshot's lineage revision (Info.Numbered). A version 1 snapshot, which has
// no history, starts the history at its lineage revision, as a revision
// labelled "restore" whose past is unknown. Into a store already past those
// revisions, or when the history cannot be replayed (Info.HistoryErr), the
// content is committed alone as a new revision of the store, labelled
// "restore". The attachments are returned in Info.Attachments.
//
// Restoring the content costs what it changes: it hands the store each resource
// as the snapshot holds it (store.SetEncoded), with names and versions read in
// place from the snapshot's bytes, so a resource whose encoding the store
// already holds costs a lookup and a byte comparison, and only the others are
// decoded, validated and encoded. What it cannot avoid is proportional to the
// snapshot: reading it, two SHA-256 passes (the checksum and the content
// digest), one slot per resource in the snapshot's tables and in the commit,
// and the version check of every resource after the commit. Restoring a
// snapshot that differs from the store in one resource of 100,000 decodes,
// validates and encodes that resource alone; its allocations are a constant
// hundred or so (the summaries of its history revision among them), but the
// slots above are bytes in proportion to the snapshot (about 19 MB at 100,000
// resources), and so is its time (BenchmarkRestoreOne).
//
// A snapshot that fails a check, or whose content the store refuses, is refused:
// the store is untouched, the snapshot is set aside (renamed to
// <name>.corrupt-<time>, or copied to <key>.corrupt-<time> on S3, where the
// original stays for the next write to replace), never deleted, and the error
// wraps ErrRefused and the failed check and says where the snapshot went. A
// backend that keeps previous snapshots (History: the file backend's <name>.1
// to <name>.N) then offers them, newest first: the first that passes every
// check is restored, Info.From and Info.Refusals say which and why each newer
// one was refused, and the Persister writes it back in place at once. The
// previous snapshots themselves are never moved. When none passes, the server
// starts from its config source alone; Info.String says so for status pages.
// A location that holds no snapshot restores nothing, previous snapshots or
// not: removing the snapshot is how to start from the config source alone.
//
// # Persister
//
// A Persister checks the store every interval (DefaultInterval, 60 s) and
// writes it if it has a new revision or an attachment changed since the last
// write, and once more when Run stops. The same store revision means the same
// content and history, and costs nothing; a new revision is written even when
// its content is the one written (a change undone), so that the snapshot keeps
// the history and the numbering a restart continues. A store just restored,
// still holding the snapshot's content (same content digest), is not written
// back. A failed write is retried after a backoff that doubles from MinBackoff
// to MaxBackoff; serving never waits for the backend.
//
// Before the config source has loaded (ConfigLoaded), an empty store is never
// written: a server that starts without config, or whose snapshot was refused,
// does not replace the last good snapshot with nothing.
//
// Each snapshot records a lineage revision (Header.Revision): the restored
// snapshot's revision plus the store's commits since, so revisions keep growing
// across restarts and two replicas can compare them. A store that began empty,
// or that continues a restored snapshot's numbering (Info.Numbered), has the
// lineage revision as its own revision, so the revisions of the history, of
// store.Result and of the snapshot are one numbering. They differ only for a
// store restored into after it had committed (Info.Numbered false), or whose
// persister joined, on a write conflict, the lineage of a snapshot it could not
// read at start: the lineage then counts on from the snapshot's revision.
//
// A Persister is a prometheus.Collector of leanxds_snapshot_writes_total,
// _write_failures_total, _conflicts_total, _last_success_timestamp_seconds,
// _bytes, _revision and _write_duration_seconds.
//
// Rule ids (S3, D3, D8, R15) refer to the project's rule list,
// conformance/RULES.md.
package persist
