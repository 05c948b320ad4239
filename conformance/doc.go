// Package conformance proves leanxds's protocol rules with real clients.
//
// Rules lists every rule the engine implements (R1…, S1…, D1…, X1…, P1…), each
// with the section of the xDS protocol it comes from; RULES.md is generated from
// it and from the scenarios, and is the project's own rule list, which code and
// tests cite. The tests of this package hold the scenarios that prove the rules,
// each written once, and run each scenario with every client it names:
//
//   - memory-sotw and memory-delta: the scripted client (internal/conv) in
//     memory, stepping the server's own stream sessions (stream.Session) with
//     no gRPC, goroutine or clock in between: "nothing is sent" is exact and
//     instant;
//   - scripted-sotw and scripted-delta: the same conversations over gRPC on
//     127.0.0.1, with exact wire-level expectations (nonces, versions, names,
//     order, silence within a quiet window), and a reactive client that
//     follows references as a proxyless client does;
//   - grpc-go: grpc-go's own xDS client (google.golang.org/grpc/xds) making
//     real RPCs to gRPC backends on 127.0.0.1;
//   - envoy-sotw and envoy-delta: an Envoy binary given by ENVOY_BIN, sending
//     real HTTP requests to Go backends (skipped without it).
//
// RULES.md is generated from Rules and the scenarios; a test fails when it is
// out of date, or when a rule has no scenario and is not marked NotImplemented.
// go test -v ./conformance/ ends with a table of rule, scenario, client and
// result. README.md says how to run the suite and how to add a scenario.
package conformance
