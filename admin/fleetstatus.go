package admin

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Fleet status: what the nodes connected to every replica of a fleet hold.
//
// Each replica publishes, for every node connected to it, a FleetNode (in etcd,
// under the replica's lease: package admin/fleet), and any replica shows the
// whole fleet on /debug/fleet. Whether a node is current is decided by the
// replica showing it, against what it would send the node now: versions are
// digests of content, so two replicas holding the same content send the same
// versions.

// FleetNode is the status of one node on one replica, as published: the JSON
// value of <prefix>/nodes/<replica>/<node> in etcd.
type FleetNode struct {
	Node        string    `json:"node"`
	Scope       string    `json:"scope"`
	Replica     string    `json:"replica"`
	ConnectedAt time.Time `json:"connected_at"`
	// Types holds the served types the node requested, by short name (CDS,
	// EDS, ...).
	Types map[string]FleetType `json:"types"`
	// Rollout is the node's standing against the stage of the rollout
	// running, when the stage selects it (package rollout/etcdrollout).
	Rollout *FleetRollout `json:"rollout,omitempty"`
}

// FleetRollout is a node's standing against the stage of a rollout, worked
// out by the replica it is connected to (stream.Server.Applied against the
// replica's store revision of the rollout's target).
type FleetRollout struct {
	// ID is the rollout's id, Stage the index of the stage in its plan.
	ID    string `json:"id"`
	Stage int    `json:"stage"`
	// State is "acked", "nacked" or "pending" (stream.NodeState's names).
	State string `json:"state"`
	// Rejection is the NACK when State is nacked.
	Rejection *stream.Rejection `json:"rejection,omitempty"`
}

func (r *FleetRollout) equal(o *FleetRollout) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.ID == o.ID && r.Stage == o.Stage && r.State == o.State &&
		(r.Rejection == nil) == (o.Rejection == nil) && (r.Rejection == nil || sameRejection(r.Rejection, o.Rejection))
}

// FleetType is what a node holds of one type.
type FleetType struct {
	// ACKed is the version of the newest response the node accepted; Sent the
	// version of the newest response sent to it.
	ACKed string `json:"acked"`
	Sent  string `json:"sent"`
	// Wildcard is true when the node subscribes to the whole type without
	// naming resources: the version it is sent is then Content.
	Wildcard bool `json:"wildcard,omitempty"`
	// Content is the version of the whole type in the node's scope on the
	// publishing replica (the digest of its table): a replica holding the same
	// Content sends a subscription of that type the same versions.
	Content string `json:"content"`
	// NACK is the node's newest rejection of the type, if any.
	NACK *FleetNACK `json:"nack,omitempty"`
}

// FleetNACK is a node's newest rejection of a type.
type FleetNACK struct {
	// Version is the rejected version, Nonce the rejected response's nonce.
	Version string    `json:"version"`
	Nonce   string    `json:"nonce"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

func (n *FleetNACK) equal(o *FleetNACK) bool {
	return n.Version == o.Version && n.Nonce == o.Nonce && n.Error == o.Error && n.At.Equal(o.At)
}

// Equal reports whether two statuses say the same: a publisher writes a node
// again only when it changed.
func (n *FleetNode) Equal(o *FleetNode) bool {
	return n.Node == o.Node && n.Scope == o.Scope && n.Replica == o.Replica &&
		n.ConnectedAt.Equal(o.ConnectedAt) && n.Rollout.equal(o.Rollout) &&
		maps.EqualFunc(n.Types, o.Types, func(a, b FleetType) bool {
			return a.ACKed == b.ACKed && a.Sent == b.Sent && a.Wildcard == b.Wildcard && a.Content == b.Content &&
				(a.NACK == nil) == (b.NACK == nil) && (a.NACK == nil || a.NACK.equal(b.NACK))
		})
}

// FleetNodes returns the status of every node with a stream in streams, seen
// by the replica named replica whose store view is v: one per node ID, the
// types of every stream of the node merged (the newest stream's wins for a
// type on two streams: a reconnection not yet noticed by the old one).
func FleetNodes(replica string, v store.View, streams []stream.StreamStatus) map[string]*FleetNode {
	out := make(map[string]*FleetNode, len(streams))
	// The content versions of the scopes' tables, computed once a call.
	contents := map[[2]string]string{}
	content := func(scope, typeURL string) string {
		k := [2]string{scope, typeURL}
		c, ok := contents[k]
		if !ok {
			c = v.Table(scope, typeURL).Digest().Version()
			contents[k] = c
		}
		return c
	}
	// Streams come ordered by ID, so the newest stream of a node comes last.
	for _, s := range streams {
		n := out[s.NodeID]
		if n == nil {
			n = &FleetNode{Node: s.NodeID, Replica: replica, Types: make(map[string]FleetType, len(s.Types))}
			out[s.NodeID] = n
		}
		n.Scope, n.ConnectedAt = s.Scope, s.ConnectedAt
		for _, t := range s.Types {
			if !t.Served {
				continue
			}
			ft := FleetType{
				ACKed: t.VersionACKed, Sent: t.VersionSent,
				Wildcard: t.Wildcard && len(t.Names) == 0,
				Content:  content(s.Scope, t.TypeURL),
			}
			if nk := t.LastNACK; nk != nil {
				ft.NACK = &FleetNACK{Version: nk.RejectedVersion, Nonce: nk.Nonce, Error: nk.Message, At: nk.At}
			}
			n.Types[protocol.Short(t.TypeURL)] = ft
		}
	}
	return out
}

func sameRejection(a, b *stream.Rejection) bool {
	return a.TypeURL == b.TypeURL && a.Version == b.Version && a.Revision == b.Revision && a.Detail == b.Detail && a.At.Equal(b.At)
}

// FleetReplica is a replica of the fleet, as published: the JSON value of
// <prefix>/replicas/<id>.
type FleetReplica struct {
	// ID is the replica's id (its key, not part of the value).
	ID string `json:"id,omitempty"`
	// Addr is the replica's xDS address; Started when it started publishing;
	// Version the leanxds version it runs.
	Addr    string    `json:"addr"`
	Started time.Time `json:"started"`
	Version string    `json:"version"`
	// Rollout, when set, is where the replica's nodes stand against the
	// stage of the rollout running, as their records (FleetNode.Rollout)
	// say: it is written once they all are, and a stage is decided from
	// those of every replica (package rollout/etcdrollout).
	Rollout *FleetReplicaRollout `json:"rollout,omitempty"`
}

// FleetReplicaRollout is where the nodes of one replica that a rollout's
// stage selects stand against it.
type FleetReplicaRollout struct {
	// ID is the rollout's id, Stage the index of the stage in its plan.
	ID    string `json:"id"`
	Stage int    `json:"stage"`
	// ACKed, NACKed and Pending count the nodes.
	ACKed   int `json:"acked"`
	NACKed  int `json:"nacked"`
	Pending int `json:"pending"`
	// Seen counts the nodes of the stage the replica saw during it (served
	// a view, or listed here), connected or not; Gone those of them no longer
	// connected to it: a node may have crashed on the target. Both are
	// bounded by what the replica remembers (package rollout/etcdrollout).
	Seen int `json:"seen,omitempty"`
	Gone int `json:"gone,omitempty"`
	// GoneNodes are the ids of the first MaxFleetGoneNodes gone nodes, in
	// order, each at most MaxFleetGoneNodeBytes long (a longer one is
	// counted in Gone, not named): the decider looks for them on the other
	// replicas, where a node that moved is counted (package
	// rollout/etcdrollout).
	GoneNodes []string `json:"gone_nodes,omitempty"`
	// NACKs are the NACKs of the first MaxFleetNACKs nodes that NACKed, by
	// node id, each detail cut short (rollout.MaxDetail bytes).
	NACKs []FleetNodeNACK `json:"nacks,omitempty"`
}

// MaxFleetNACKs bounds FleetReplicaRollout.NACKs.
const MaxFleetNACKs = 10

// MaxFleetGoneNodes and MaxFleetGoneNodeBytes bound
// FleetReplicaRollout.GoneNodes: 32 ids of at most 256 bytes.
const (
	MaxFleetGoneNodes     = 32
	MaxFleetGoneNodeBytes = 256
)

// SumStanding is the summary of a replica's nodes' standing against stage
// stage of rollout id, nodes by node id: the counts, and the NACKs of the
// first MaxFleetNACKs nodes that NACKed, by id. Seen, Gone and GoneNodes are
// the caller's.
func SumStanding(id string, stage int, nodes map[string]*FleetRollout) *FleetReplicaRollout {
	sum := &FleetReplicaRollout{ID: id, Stage: stage}
	for _, node := range slices.Sorted(maps.Keys(nodes)) {
		switch n := nodes[node]; n.State {
		case stream.NodeACKed.String():
			sum.ACKed++
		case stream.NodeNACKed.String():
			sum.NACKed++
			if len(sum.NACKs) < MaxFleetNACKs && n.Rejection != nil {
				sum.NACKs = append(sum.NACKs, FleetNodeNACK{Node: node, Rejection: *n.Rejection})
			}
		default:
			sum.Pending++
		}
	}
	return sum
}

// FleetNodeNACK is a node's NACK of a rollout's target.
type FleetNodeNACK struct {
	Node      string           `json:"node"`
	Rejection stream.Rejection `json:"rejection"`
}

// Equal reports whether two standings say the same.
func (r *FleetReplicaRollout) Equal(o *FleetReplicaRollout) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.ID == o.ID && r.Stage == o.Stage && r.ACKed == o.ACKed && r.NACKed == o.NACKed && r.Pending == o.Pending &&
		r.Seen == o.Seen && r.Gone == o.Gone && slices.Equal(r.GoneNodes, o.GoneNodes) &&
		slices.EqualFunc(r.NACKs, o.NACKs, func(a, b FleetNodeNACK) bool { return a.Node == b.Node && sameRejection(&a.Rejection, &b.Rejection) })
}

// Fleet reads the status every replica of the fleet publishes (package
// admin/fleet reads it from etcd), for /debug/fleet.
type Fleet interface {
	// FleetNodes returns the replicas and a window of the nodes of the fleet,
	// ordered by replica and node: at most limit of those after the one
	// whose Cursor is after ("" for the first).
	FleetNodes(ctx context.Context, after string, limit int) (FleetList, error)
}

// FleetList is a window of the fleet's nodes.
type FleetList struct {
	// Revision is the etcd revision the list was read at.
	Revision int64
	Replicas []FleetReplica
	// Total counts the nodes of the fleet.
	Total int
	Nodes []FleetEntry
	// More is true when nodes follow the window.
	More bool
}

// FleetEntry is one node of a FleetList: its status, or why it could not be
// read.
type FleetEntry struct {
	// Cursor names the entry in the list, for the window after it.
	Cursor string
	Node   FleetNode
	// Err is set when the published value is not a FleetNode.
	Err error
}

// currentTypes tells, for each type of n, whether n holds what the replica
// whose view is v would send it now; and whether it does for every type.
func currentTypes(v store.View, n *FleetNode) (map[string]bool, bool) {
	out := make(map[string]bool, len(n.Types))
	all := true
	for _, short := range slices.Sorted(maps.Keys(n.Types)) {
		t := n.Types[short]
		want := v.Table(n.Scope, typeURLOf(short)).Digest().Version()
		// A wildcard subscription is sent the whole table; one naming resources
		// is sent what it names: the node holds what this replica would send if
		// it ACKed the newest response its replica sent, made of the same
		// content as this replica holds.
		cur := t.ACKed == want
		if !t.Wildcard {
			cur = t.ACKed != "" && t.ACKed == t.Sent && t.Content == want
		}
		out[short] = cur
		all = all && cur
	}
	return out, all
}

// typeURLOf is the type URL of a short name (CDS), or short itself, which
// protocol.Short returns for a type it does not know.
func typeURLOf(short string) string {
	for _, t := range protocol.Types() {
		if t.Short == short {
			return t.URL
		}
	}
	return short
}
