package machine

import (
	"github.com/leanxds/leanxds/store"
)

// typeState is the state of one type URL on a stream: each type is its own
// request/response sequence with its own version and nonce (R3). It is three
// things: what the client asked for (sub), what it holds as far as the server
// knows (holds), and what it is owed beyond what changed, and why (owed).
type typeState struct {
	typeURL string
	// served is false for a type leanxds does not serve: it is answered as empty.
	served bool
	// fullState: every SotW response carries every subscribed resource (S1).
	fullState bool

	// sub is what the client asked for.
	sub subscription
	// holds is what the client was sent and answered.
	holds holds
	// owed is what the next response must carry even if unchanged.
	owed owed
}

// current reports whether the client is known to be current with table cur and
// owed nothing: the common case, answered without looking at any resource.
func (ts *typeState) current(cur *store.Table) bool {
	return cur == ts.holds.table && ts.owed.nothing()
}

// answered reports whether the client has answered the newest response of ts:
// it ACKed or NACKed it, or nothing of the type was sent. What waits on a
// client's reaction to a response (make before break, R15) waits at most until
// then, which the server sees (R19); a later request may never come.
func (ts *typeState) answered() bool {
	return ts == nil || ts.holds.answered() // nil: the type was never requested
}

// sent reports whether the client was sent name: it is subscribed, a response
// was computed since, and nothing of it is still owed.
func (ts *typeState) sent(name string) bool {
	if ts.holds.table == nil || !ts.sub.subscribes(name) {
		return false
	}
	return !ts.owed.owes(name)
}
