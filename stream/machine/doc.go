// Package machine holds the protocol state of one xDS stream as a pure state
// machine: SotW for state-of-the-world streams, Delta for incremental ones. It
// knows nothing of gRPC: package stream runs a machine per stream, in a loop
// that receives requests and sends what the machine returns.
//
// A machine takes events and returns what to send: Receive applies a request
// (with the time it arrived and the store as it was), Responses compares what
// the client holds with the store's current view and returns the responses to
// send, in push order (R15), or nothing (R6). After each of these steps Status
// hands out an immutable snapshot of the machine, which the loop publishes for
// status pages and CSDS to read without locking anything. It also records
// the store revisions a stream stands at: of the view each newest response was
// made from, of the view Responses last read, and the newest at which the
// client had ACKed all it was sent (Status.Standing judges a revision: R20,
// R21). The snapshot is as
// of the machine's newest step: a name it reports Missing (R14) that the store
// has since gained is reported so until the machine's next step, which that
// very change causes. A machine has no goroutine, channel or clock, and no
// package-level state; its own state takes no lock. What the machines of one
// server share (Caches: interned names and subscriptions, memos) is a value
// the server makes and passes to each, safe for concurrent use: it is the
// only part of a step that may take a lock, briefly. Tests drive a machine as a conversation, and fuzzers at
// random (FuzzConverge plays whole client models against it).
//
// # Parts
//
//   - sotw.go: SotW. Receive classifies a request (subscribe, ACK, NACK,
//     stale: R4, R7) and updates the type's subscription; Responses answers
//     full-state types whole (S1) and the others with what changed (S2).
//   - delta.go: Delta, the incremental machine: each resource with its own
//     version (D8), deletions named (D7), resumption from what the client
//     says it holds (D3, D9).
//   - machine.go: what SotW and Delta share: the stream's types, lookups, the
//     limits on what a client may ask (Limits), and the Machine interface the
//     loop drives.
//   - typestate.go: the state of one type, which is three things:
//   - subscription.go: what the client asked for (R9–R12, S4, D4–D6, X1–X4);
//   - holds.go: what it holds, as far as the server knows: the responses it
//     was sent, what it ACKed and NACKed (R4–R7);
//   - owed.go: what it is owed beyond what changed, and why: new names (R9),
//     the EDS/RDS answers owed to new or updated clusters and listeners (R16),
//     explicit empty assignments (P2), a resume (S6, D9);
//   - makebeforebreak.go: deleted clusters and endpoints still sent while
//     what the client holds uses them (R15), for as long as the transition
//     lasts (R18) and no longer than the client's answer (R19), and routes held
//     back while their clusters warm;
//   - order.go: push order across types (R15).
//   - caches.go, nameset.go, memo.go, shared.go, names.go: Caches, the work
//     shared between the machines of one server: interned subscriptions
//     (nameset.go), answers about tables remembered by memos (memo.go,
//     shared.go), request names (names.go); each bounded.
//   - decode.go: the decoding of SotW requests whose resource names are shared
//     (Caches.UnmarshalRequest), which the server's gRPC codec calls.
//   - response.go, status.go: Response, what to send; Status and TypeStatus,
//     what a stream shows, and Standing, where it stands against a revision.
//
// # What a client holds
//
// For each type a machine remembers the store table its last response was
// computed from. Tables are immutable, so "what the client holds" costs one
// pointer, and "what changed since" is the store's change log between two table
// revisions. Versions are digests of content, never counters, so they agree
// across streams and server restarts (S3).
//
// Rule ids (R1, S3, P2, ...) refer to the project's rule list,
// conformance/RULES.md; the code cites them where it enforces them and the
// tests where they prove them.
package machine
