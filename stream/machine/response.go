package machine

import (
	"github.com/leanxds/leanxds/store"
)

// Response is what a state machine decided to send: the resources, in order, of one
// type. The transport encodes it from the entries' pre-encoded bytes. A
// response is read-only once made: streams share its slices.
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
	// Removed names resources the client must delete (delta only, D7), each as
	// the client spelled it (X4).
	Removed []string
	// Spellings, when not nil, holds the name each of Resources is sent under:
	// in a delta response, the client's own spelling where it subscribed with
	// one (X4). It is nil when every resource goes under its store name.
	Spellings []string
	// Whole is set when Resources is exactly Table.Sorted(): the response is the
	// same for every stream that sends Table whole, and is encoded once for all.
	Whole bool
	// Table is the store table the response was computed from.
	Table *store.Table
}

// ResourceName returns the name Resources[i] is sent under: its store name, or in
// a delta response the name as the client spelled it when it subscribed (X4).
func (r *Response) ResourceName(i int) string {
	if r.Spellings != nil {
		return r.Spellings[i]
	}
	return r.Resources[i].Name
}
