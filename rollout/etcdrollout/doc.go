// Package etcdrollout runs rollouts on a fleet of replicas served by the etcd
// source (source.Etcd): the rollout's state lives in etcd, every replica
// serves the stage it names, and one replica decides the stages from the
// fleet status every replica publishes (docs/etcd.md, "Rollouts with
// replicas").
//
// Under the prefix P:
//
//	P/rollout/state    State, as JSON: id, base and target generations, plan,
//	                   stage, phase, times, events
//	P/rollout/leader   the election of the replica that decides
//
// A staged change is a generation: leanxds apply --rollout (Start gives
// source.ApplyOptions.Rollout) writes the directory into a new generation and
// flips P/current to it in the txn that writes P/rollout/state, naming the
// generation served before as the base (the base of the rollout it
// supersedes, if one runs: it restarts at stage 0). The base generation stays
// under P/gen/ while the rollout refers to it.
//
// On every replica, a Replica is:
//
//   - the source's source.EtcdRollouts: when the source lists the target it
//     has made sure the store held the base first, so the base is a revision
//     whose unchanged entries the target's shares, and the Replica keeps its
//     view;
//   - the streams' stream.Router: a node of a scope the target changes is
//     served the target when the stage (or one before it) selects it, the base
//     otherwise. It follows P/rollout/state and wakes the streams when the
//     stage changes. A rollback keeps routing until the source has committed
//     the base, so that no node outside the stage is served the target
//     meanwhile;
//   - the fleet publisher's Rollout (Standing): each node the stage selects
//     has its standing against the replica's store revision of the target
//     (stream.Server.Applied) in its fleet record, and the replica's record
//     sums them (with the first NACKs) once every such record is written.
//
// The replicas elect one (concurrency.Election under P/rollout/leader) to
// decide: every Options.Interval it reads the state and the replicas' records
// at one etcd revision and, when MaxNACKs of the stage's nodes NACKed, rolls
// back (one txn: P/current back to the base, the state rolled_back with the
// NACKs, bounded: rollout.BoundRejections; a state too large for etcd is
// written again without them); when every replica's record is for the stage
// and none of its nodes is pending or gone, moves to the next stage (after
// the last: promoted, and the base generation deleted); when the window
// ended, moves on when no replica saw a node of the stage during it (event
// "empty"), and does the plan's OnTimeout otherwise. A node seen during the
// stage and gone since (it may have crashed on the target) counts as
// pending: each replica remembers the nodes of the stage it saw (at most
// MaxSeen) and publishes how many, and how many of them are gone, so that the
// decision does not depend on which replica decides. A gone node that
// another replica publishes as having ACKed the same stage moved there, and
// is not gone (each replica names its first
// admin.MaxFleetGoneNodes gone nodes; the decider reads their records on the
// other replicas). Every write of the state is guarded by the
// ModRevision it was read at, so a decider that lost its lease without
// knowing it yet, an apply, and Promote or Abort from any replica never
// overwrite each other: one wins, the others read again. A decider that stops
// resigns (or its lease expires) and another replica takes over from the state
// in etcd.
package etcdrollout
