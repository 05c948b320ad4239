package stream

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/stream/machine"
)

// The machine's vocabulary, under the names the server's users know it by.
type (
	// Response is what a stream's state machine decided to send.
	Response = machine.Response
	// Received describes a request after the state machine classified it.
	Received = machine.Received
	// Kind classifies a request.
	Kind = machine.Kind
	// NACK is a client's rejection of a response.
	NACK = machine.NACK
	// Limits bound what one client may ask of the server.
	Limits = machine.Limits
	// TypeStatus is the state of one type on a stream.
	TypeStatus = machine.TypeStatus
	// SotW is the state machine of a state-of-the-world stream.
	SotW = machine.SotW
	// Delta is the state machine of an incremental stream.
	Delta = machine.Delta
)

// The kinds of request (see machine.Kind).
const (
	KindSubscribe = machine.KindSubscribe
	KindACK       = machine.KindACK
	KindNACK      = machine.KindNACK
	KindStale     = machine.KindStale
)

// The defaults of Limits (see machine.Limits).
const (
	DefaultMaxNameBytes        = machine.DefaultMaxNameBytes
	DefaultMaxRequestNameBytes = machine.DefaultMaxRequestNameBytes
	DefaultMaxNodeBytes        = machine.DefaultMaxNodeBytes
)

// Wildcard is the resource name that subscribes to every resource of a type (R10, D4).
const Wildcard = machine.Wildcard

// NewSotW returns the state machine of a new SotW stream serving scope to
// node, with caches of its own: machine.NewSotW with a server's caches is what
// a server's streams run.
func NewSotW(scope string, node *corev3.Node, limits Limits) *SotW {
	return machine.NewSotW(machine.Config{Scope: scope, Node: node, Limits: limits})
}

// NewDelta is NewSotW for a delta stream.
func NewDelta(scope string, node *corev3.Node, limits Limits) *Delta {
	return machine.NewDelta(machine.Config{Scope: scope, Node: node, Limits: limits})
}
