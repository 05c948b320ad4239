// Package xdstest holds the Envoy resource fixtures shared by the unit tests, the
// conformance suite and the benchmarks of leanxds, so that a resource used in a
// protocol scenario is written once.
//
// Every builder returns a fresh, realistic v3 resource that passes its generated
// ValidateAll, including the typed_config payloads nested in it, and that both
// Envoy and grpc-go's xDS client accept: dynamic resources are fetched over ADS
// (config_source {ads: {}, resource_api_version: V3}), as a client of a single
// leanxds server does.
//
// The builders panic on malformed arguments (an address that is not "host:port",
// a message that cannot be packed in an Any): they are fixtures, and a broken
// fixture is a bug in the test that wrote it.
//
// Workload describes the synthetic configuration the benchmarks load: clusters
// with their endpoints, listeners and the route configurations they use.
package xdstest
