package machine

import (
	"github.com/leanxds/leanxds/store"
)

// Push order
//
// A stream sends its types in push order (protocol.PushOrder, R15: clusters
// before endpoints before listeners before routes), which its type states keep
// (machine.types is sorted by it), and over more than one pass when a response
// of a later type releases what an earlier one held back.

// responses computes each requested type's response in push order (R15). A
// response can release what an earlier type held back (the endpoints a kept
// cluster waited for were just sent), so the types are passed over again until
// nothing more is to be sent: a later call with nothing new sends nothing (R6).
func (s *machine) responses(v store.View, respond func(store.View, *typeState) *Response) []*Response {
	var out []*Response
	for pass := 0; pass < maxPasses; pass++ {
		n := len(out)
		// By index: a response may add the state of a later type (owe), which
		// is not requested and so not answered in this pass.
		for i := 0; i < len(s.types); i++ {
			if ts := s.types[i]; ts.sub.requested {
				if r := respond(v, ts); r != nil {
					out = append(out, r)
				}
			}
		}
		if len(out) == n && (pass > 0 || !s.holdingBack()) {
			break
		}
	}
	return out
}

// holdingBack reports whether make before break keeps anything that a later type
// of this pass may have released.
func (s *machine) holdingBack() bool {
	for _, ts := range s.types {
		if len(ts.owed.retained) > 0 {
			return true
		}
	}
	return false
}

// maxPasses bounds the passes of responses: one release leads to at most one
// more response of an earlier type.
const maxPasses = 3
