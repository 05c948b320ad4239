package stream

import (
	"context"
	"errors"
	"time"
)

// Who runs what: for a store revision and a set of nodes, which nodes run
// content at or past it, which rejected it, and which have not answered yet.

// NodeState is where a node stands against a revision.
type NodeState int

const (
	// NodePending: the node has not yet ACKed content at or past the revision
	// (a response is on its way or unanswered, or it was not sent it yet).
	NodePending NodeState = iota
	// NodeACKed: the node runs content at or past the revision: at a view at or
	// past it, everything the node was owed was sent and ACKed. A node whose
	// subscriptions the revision did not change is ACKed without a new response
	// (versions are digests of content).
	NodeACKed
	// NodeNACKed: the node rejected a response made at or past the revision.
	NodeNACKed
)

func (s NodeState) String() string {
	switch s {
	case NodeACKed:
		return "acked"
	case NodeNACKed:
		return "nacked"
	}
	return "pending"
}

// MarshalText makes a NodeState its name in JSON.
func (s NodeState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Rejection is a NACK a node sent.
type Rejection struct {
	TypeURL string `json:"type_url"`
	// Version is the version of the response rejected.
	Version string `json:"version"`
	// Revision is the store revision of the view the rejected response was
	// made from.
	Revision uint64 `json:"revision"`
	// Detail is the client's error_detail message.
	Detail string    `json:"detail"`
	At     time.Time `json:"at"`
}

// NodeApplied is one node's standing against a revision.
type NodeApplied struct {
	NodeID string    `json:"node_id"`
	Scope  string    `json:"scope"`
	State  NodeState `json:"state"`
	// Revision is the newest store revision the node is known to run (0 when
	// none yet).
	Revision uint64 `json:"revision"`
	// Rejection is the NACK when State is NodeNACKed.
	Rejection *Rejection `json:"rejection,omitempty"`
}

// Applied is where a set of nodes stands against a revision.
type Applied struct {
	Revision uint64 `json:"revision"`
	// Nodes are the selected nodes connected now, by node id.
	Nodes  []NodeApplied `json:"nodes"`
	ACKed  int           `json:"acked"`
	NACKed int           `json:"nacked"`
	// Pending counts the nodes neither ACKed nor NACKed.
	Pending int `json:"pending"`
}

// Done reports whether every node ACKed, or any NACKed.
func (a *Applied) Done() bool { return a.NACKed > 0 || a.Pending == 0 }

// ErrNotImplemented is returned by what is not built yet.
var ErrNotImplemented = errors.New("not implemented")

// Applied returns where the nodes sel selects stand against revision rev now.
func (s *Server) Applied(rev uint64, sel Selector) Applied {
	return Applied{Revision: rev}
}

// WaitApplied waits until every node sel selects runs content at or past rev,
// or any rejected it (Applied.Done), or ctx ends; it returns where they stand
// then, with ctx's error if it ended first.
func (s *Server) WaitApplied(ctx context.Context, rev uint64, sel Selector) (Applied, error) {
	return s.WaitFor(ctx, rev, sel, (*Applied).Done)
}

// WaitFor waits until done reports true of where the nodes sel selects stand
// against rev, or ctx ends.
func (s *Server) WaitFor(ctx context.Context, rev uint64, sel Selector, done func(*Applied) bool) (Applied, error) {
	return Applied{Revision: rev}, ErrNotImplemented
}
