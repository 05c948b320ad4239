// Package fleet publishes the status of the nodes connected to one replica of
// a fleet in etcd, and reads that of every replica back, for the admin page
// /debug/fleet (admin.Fleet).
//
// Every replica writes, under an etcd lease it keeps alive:
//
//	<prefix>/replicas/<replica id>            {addr, started, version}
//	<prefix>/nodes/<replica id>/<node id>     admin.FleetNode as JSON
//
// (source.EtcdNodesPrefix: outside the range the etcd source watches, so
// that these writes never wake a replica's source.) With Options.Rollout, a
// node's record carries its standing against the stage of the rollout running
// (admin.FleetNode.Rollout), and the replica's record the stage its nodes'
// records were all worked out for (admin.FleetReplica.Rollout): what the
// replica deciding a rollout's stages counts (package rollout/etcdrollout).
//
// A replica that dies stops renewing its lease, and etcd deletes its keys when
// the lease expires (Options.TTL): the fleet then shows its nodes on the
// replicas they reconnected to. A replica that stops cleanly revokes its
// lease, which deletes them at once.
//
// A Publisher polls the streams' status (stream.Server.Streams: immutable
// snapshots, read without locking the streams) every Options.Interval, diffs
// it against what it last wrote, and writes only what changed: a node whose
// status changed is put, a node that left is deleted, in transactions of at
// most Options.MaxTxnOps operations and Options.MaxTxnBytes bytes. Writes are
// bounded by Options.MaxWritesPerSecond (a token bucket): past it, what is
// left waits for the next poll, where it coalesces with whatever changed
// meanwhile (a node that changed twice is written once), and the next poll
// starts where the previous one stopped, so that no node waits behind others
// for long.
//
// A Reader lists the replicas and a window of the nodes at one etcd revision.
//
// The parts:
//
//   - publisher.go: Publisher, its lease and its poll.
//   - plan.go: what one poll writes: the diff, the rotation, the batches.
//   - rate.go: the write rate bound.
//   - reader.go: Reader.
//   - metrics.go: the publisher's Prometheus metrics (leanxds_fleet_*).
package fleet
