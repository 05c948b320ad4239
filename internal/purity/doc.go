// Package purity holds a test that keeps the engine packages free of
// package-level mutable state: two servers in one process must share nothing,
// and a state machine that reads a global is not the pure value it claims to
// be. The test scans the packages' package-level variables and allows only
// error sentinels, blank assertions and a short, commented list of read-only
// tables.
package purity
