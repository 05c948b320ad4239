// Package conformance proves leanxds's protocol rules with real clients.
//
// Rules lists every rule the engine implements, numbered as in XDS-RULES.md
// (R1…, S1…, D1…, X1…, P1…), each with the section of the xDS protocol it comes
// from. The tests of this package hold the scenarios that prove them and run
// each scenario with every client it names:
//
//   - scripted-sotw and scripted-delta: a scripted ADS client with exact
//     wire-level expectations (nonces, versions, names, order, silence), and a
//     reactive client that follows references as a proxyless client does;
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
