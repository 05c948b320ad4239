// Package stream serves the resources of a store.Store to xDS clients over gRPC:
// the aggregated service (ADS) and every per-type discovery service, state of the
// world (SotW) and incremental (delta).
//
// # Parts
//
//   - machine/: the protocol state of one stream as a pure state machine
//     (SotW, Delta), with no goroutine, channel, clock or package-level state
//     (the caches its steps share with other streams are the server's, and
//     the only part that takes a lock). Receive takes a request, Responses the store's current view and
//     returns what to send, in push order (R15), or nothing (R6); Status is an
//     immutable snapshot after each step. Its package doc says more.
//   - session.go: Session, what is done between a request and a send as pure
//     code: the first request names the node (R2), a per-type service fixes the
//     type, a malformed request ends the stream with its gRPC status, and every
//     waiting request is applied before a store change is answered (S5). The
//     gRPC handler and in-memory transports both drive a Session.
//   - handler.go: the gRPC loop around a Session. Two goroutines per stream:
//     one receives requests, one owns the session and sends. The stream
//     publishes the machine's status snapshot after each step (an atomic
//     pointer): Server.Streams reads it without locking the stream.
//   - encode.go, codec.go: encode once. Resources are encoded when committed; a
//     response's shared fields are written once into a frame that every stream
//     sending the same content reuses, and each stream adds only its nonce.
//     SotWResponse and DeltaResponse decode what the wire carries for a
//     Response. The codec decodes request names through the server's
//     machine.Caches.
//   - server.go, services.go: Server, its options, the caches its machines
//     share, and the gRPC service descriptions Register installs.
//   - machine.go: the machine's vocabulary (Response, Received, NACK, Limits,
//     TypeStatus, ...) under the names the server's users know it by.
//   - listener.go: the connections Listener accepts, bounded by MaxConns and
//     known to the server, so that it can close the connection of a client
//     that stopped reading.
//   - status.go, hooks.go: what the server exposes of each stream for status
//     pages, CSDS, metrics and logs.
//   - route.go, selector.go, applied.go: who is served what, and who runs
//     what. A Router picks the view of the store each node is served, and
//     Wake makes streams read it again; a Selector picks nodes. Applied judges
//     the nodes a Selector picks against a store revision from the status
//     snapshots their streams publish (R20–R22), with no stream's lock;
//     WaitFor waits on a broadcast that streams send, only while someone
//     waits, when their standing may have changed.
//
// # What a client holds
//
// For each type a stream remembers the store table its last response was computed
// from. Tables are immutable, so "what the client holds" costs one pointer, and
// "what changed since" is the store's change log between two table revisions.
// Versions are digests of content, never counters, so they agree across streams
// and server restarts (S3).
//
// # Slow clients
//
// A client that stops reading blocks only its own stream's sender, in gRPC's
// flow control. Store changes meanwhile coalesce in the stream's watcher; when
// the client reads again, it is sent the latest state, not every version in
// between, so a stalled stream holds a bounded amount of memory. A send blocked
// for Options.SendTimeout ends the stream: grpc-go offers no way to abandon a
// send but ending the connection, so its connection is closed.
//
// # Limits
//
// Options bound what a peer may hold: connections (MaxConns, through
// Listener), streams per connection (MaxStreamsPerConn, announced in HTTP/2
// SETTINGS through GRPCOptions), the wait for a stream's first request
// (FirstRequestTimeout) and for a client to take a response (SendTimeout).
// Each stream has one timer for the two waits, re-armed around each send. A
// stream is the server's from its start: Shutdown and AwaitingFirstRequest
// reach it before it names its node.
//
// # Limits of the design
//
//   - Ordering across types (R15 make before break, R16 answers owed to new
//     clusters and listeners) holds within one stream. A client that uses the
//     per-type services gets each type on its own stream, which the protocol
//     does not order; that is what ADS is for.
//   - A node is given its scope when its stream opens. A node that fell back to
//     the default scope keeps it until it reconnects.
//   - Shutdown ends every stream; one whose client may have stopped reading
//     (a send in progress, a response unanswered) has its connection closed,
//     when Listener accepted it. Without Listener such a stream holds
//     grpc.Server.GracefulStop: bound it with a timeout and then call Stop, as
//     the leanxds binary does.
//
// Rule ids (R1, S3, P2, ...) refer to the project's rule list,
// conformance/RULES.md; the code cites them where it enforces them and the
// tests where they prove them.
package stream
