package rollout

import (
	"context"

	"github.com/leanxds/leanxds/stream"
)

// Shared keeps a rollout's state where several replicas read it (etcd), so
// that every replica serves the same stage and one decision counts the nodes
// of every replica. With Options.Shared nil, a Manager keeps its state in its
// process.
//
// Shared is for embedders whose replicas each commit the same changes to
// their own stores. Where the content itself lives in a shared store, as with
// leanxds serve's etcd source, a rollback must be a change of that store, not
// of each replica's: rollout/etcdrollout's Replica does that instead of a
// Manager.
//
// The state is MarshalState's JSON. Its revisions (base, target, bases) are
// those of the store of the process that reads or writes it: an
// implementation whose replicas' stores number revisions differently
// translates them in Load and Save (to the generations of the content it
// shares, say). A Manager adopts a state it loads only once its store holds
// the state's target, and decides no stage until then (it loads the state
// again after each Stage, each commit to the running rollout's scopes, and
// each Changed signal); the state's bases must be in the store's history.
//
// A Manager with a Shared saves every change it makes (Stage, a stage
// decision, Promote, Abort, Rollback) with Save, and adopts the state Load
// returns whenever Changed signals. Every replica commits a shared change
// to its own store through its own Stage, with the same plan: the store's
// views of its base and target are then its own, and the nodes outside the
// first stage are never served the target. A rollout's id is made from its
// target's revision, so replicas whose stores number revisions alike stage
// the same rollout; the first to save it wins and the others adopt it. Any replica may decide: a decision is
// saved only if the state is still the one it was made from (compare and
// swap on version), and a replica whose Save lost reloads the state and
// decides again from it. A replica that adopts a rollback another made
// commits the base again to its own store, as the deciding one did; a Stage
// whose commit the shared state already names (another replica staged the
// same change first) joins that rollout where it stands.
//
// Numbering alike needs every replica to see every rollback: the base
// commit a rollback makes counts a revision on each store that adopts it. A
// replica whose Load skips a rolled-back state (Changed coalesced it with
// the next rollout's) numbers its revisions one lower than the others from
// then on, and waits for a target its store never reaches: it keeps serving
// what it served and decides nothing (logged), until the state names a
// target its store holds. An implementation that cannot deliver every state
// translates revisions instead.
type Shared interface {
	// Load returns the state saved last (nil when none was) and its version,
	// which Save compares. Versions only grow: every Save that succeeds
	// returns a version greater than any before it (etcd's ModRevision is
	// one), so a Manager can tell a Load that raced its own Save.
	Load(ctx context.Context) (state []byte, version int64, err error)
	// Save stores state when the stored version is still version, and
	// returns the new version; saved is false, with no error, when another
	// replica saved first.
	Save(ctx context.Context, state []byte, version int64) (newVersion int64, saved bool, err error)
	// Changed returns a channel that receives a value after the state
	// changes, or the standing of a rollout's nodes does (signals may
	// coalesce); the channel is closed once ctx ends.
	Changed(ctx context.Context) <-chan struct{}
	// Applied returns where the nodes of the current stage of rollout id
	// stand against its target, on every replica: the sum of what each
	// replica's Manager.Applied reports for its own nodes.
	Applied(ctx context.Context, id string) (stream.Applied, error)
}
