// Package load is the load generator of the leanxds benchmarks: simulated Envoy
// clients on ADS (state of the world or delta) and the measurements around them.
//
// # Parts
//
//   - client.go: one client on one stream. It asks what Envoy asks at start
//     (wildcard CDS, EDS for every cluster, then wildcard LDS and RDS for every
//     route configuration), ACKs every response, reads on one goroutine and sends
//     on another, and watches for the resource a change is expected to bring.
//   - wire.go, names.go: messages read and written with protowire, straight from
//     gRPC's buffers; names numbered and name lists shared by a worker's clients,
//     and a response's parse shared by every client sent the same content, so a
//     client costs a few hundred bytes.
//   - worker.go, remote.go: a worker runs a share of the clients over its
//     connections, in this process or in a child process speaking JSON lines.
//   - run.go: Run drives one measurement against a server's control API
//     (bench/control): connect, memory, changes, final check; and returns a Result.
package load
