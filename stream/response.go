package stream

import (
	"github.com/leanxds/leanxds/store"
)

// Response is what a state machine decided to send: the resources, in order, of one
// type. The gRPC layer encodes it from the entries' pre-encoded bytes.
type Response struct {
	// TypeURL is the type of every resource in the response.
	TypeURL string
	// Version is the response's version_info (SotW) or system_version_info (delta):
	// a digest of the content the client holds once it applies the response.
	Version string
	// Nonce identifies the response on its stream (R1).
	Nonce string
	// Resources are the resources to send, in name order.
	Resources []*store.Entry
	// Removed names resources the client must delete (delta only, D7).
	Removed []string
	// full is set when Resources is exactly table.Sorted(): the response can be
	// shared by every stream that sends the same table whole.
	full  bool
	table *store.Table
}
