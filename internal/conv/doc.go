// Package conv is a scripted xDS client for tests: it makes a protocol test read
// like the conversation it checks. The conformance suite writes each protocol
// scenario once with it and runs it over both of its transports; the tests of
// stream, persist and cmd/leanxds use it too, mostly over gRPC. (The benchmarks
// do not: bench/ has its own load generator.)
//
// A conversation runs over one of two transports:
//
//   - gRPC: ADS and Typed open a state-of-the-world stream (the aggregated
//     service or the per-type one), DeltaADS and DeltaTyped an incremental one,
//     over any grpc.ClientConnInterface: a connection to 127.0.0.1 or a bufconn.
//     Each wait is bounded by a timeout (WithTimeout); ExpectNothing listens for
//     a quiet window (WithQuiet), so it is slow and can miss a late response.
//   - in memory: a Memory over a store opens the same streams (Memory.ADS,
//     Memory.DeltaADS, ...) as stream.Session values of a stream.Server: what
//     the gRPC handler runs between a request and a send (R2, scopes, per-type
//     services, Authorize, the state machine, the status a refused request ends
//     its stream with, the frame a response is sent in), stepped by the test
//     goroutine with no gRPC, goroutine or clock. A request is applied when it
//     is sent, and the responses are computed, at the store's current view,
//     when the test waits for them; so ExpectNothing is exact and instant (the
//     server has nothing to send), and ExpectResponse fails at once when it has
//     nothing. Hooks and the transport's limits (timeouts, connections) do not
//     run. Memory.Applied says who runs a store revision, as
//     stream.Server.Applied does, from the streams' status as of their
//     newest step.
//
// Both give a SotW or a Delta, so a scenario written against those runs over
// either. Each step either sends a request (Request, Subscribe, ACK, NACK, Send)
// or waits for what the server does next (ExpectResponse, ExpectNothing,
// ExpectError); a wait that is not met fails the test with what did arrive.
//
//	c := conv.ADS(t, cc, node) // or m.ADS(t, node) for m := conv.NewMemory(st, opts)
//	c.Request(protocol.TypeCluster, "web", "api").
//		ExpectResponse(conv.Version("1"), conv.Names("web", "api"))
//	c.ACK()
//	c.ExpectNothing() // R6: nothing changed, nothing is sent
//	c.Request(protocol.TypeCluster, "web", "api", "db")
//	c.ExpectResponse(conv.VersionNot("1"), conv.Names("web", "api", "db")) // R9
//	c.NACK("bad timeout") // R5: carries version 1, the last one accepted
//	c.ExpectNothing()     // R6: a NACKed version is not re-sent
//
// The client keeps what a real one keeps: per type, the last response received,
// the last version it ACKed and its current subscription, so ACK, NACK and Request
// fill version_info and response_nonce as Envoy does, and it puts the Node in the
// first request of a stream only, as grpc-go does (R2). Send puts a request on the
// wire exactly as given, for malformed input and stale nonces.
//
// Every response is also checked against the rules that hold whatever the
// scenario: its nonce is set and new on the stream (R1, D1), no resource is named
// twice (R13), and every resource is of the response's type. A breach fails the
// test at the ExpectResponse that received it.
//
// A SotW or Delta is driven by one test goroutine. Its stream is cancelled, and
// over gRPC its receive goroutine ended, when the test finishes.
package conv
