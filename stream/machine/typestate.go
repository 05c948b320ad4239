package machine

import (
	"maps"

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

// holds is what the client holds of one type, as far as the server knows: the
// responses it was sent and how it answered them.
type holds struct {
	// nonce and version are those of the newest response of this type (R1, R7).
	nonce   string
	version string
	// table is the table the client's content matches for every subscribed name,
	// once it applies the newest response; nil before anything was sent.
	table *store.Table
	// held are the tables the client may hold content of: the one it last ACKed
	// and every one sent since (oldest first, at most maxHeld). Make before
	// break (R15) keeps what any of them still uses.
	held []*store.Table
	// ackedVersion is the version of the newest response the client ACKed.
	ackedVersion string
	// acked: the client ACKed the newest response of the type.
	acked bool
	// lastNACK is the newest NACK of this type.
	lastNACK *NACK
	// previous are the nonces and versions of a few superseded responses (a
	// ring, see prevNext); nil until a response is superseded.
	previous *[maxPrevious]superseded
	// prevNext is where the next superseded response goes in previous.
	prevNext uint8
}

// maxHeld bounds the tables a type remembers as possibly held by the client.
const maxHeld = 8

// maxPrevious bounds the superseded responses a type remembers.
const maxPrevious = 4

// superseded is a response that a newer one of its type replaced.
type superseded struct{ nonce, version string }

// sent records a new response of the type, computed from table t: t may now
// be held. (SotW remembers the response it replaces first, for a late ACK.)
func (h *holds) sent(r *Response, t *store.Table) {
	h.nonce, h.version, h.acked = r.Nonce, r.Version, false
	h.hold(t)
}

// accepted records that the client ACKed the newest response (R4): it holds
// its table, and nothing older any more.
func (h *holds) accepted() {
	h.ackedVersion, h.acked = h.version, true
	h.held = append(h.held[:0], h.table)
}

// resumed records that a client on a new stream holds table t at version
// (S3, S6), as if it had been sent and ACKed here.
func (h *holds) resumed(t *store.Table, version string) {
	h.table, h.version, h.ackedVersion = t, version, version
	h.held = []*store.Table{t}
}

// answered reports whether the client has answered the newest response: it
// ACKed or NACKed it, or nothing was sent.
func (h *holds) answered() bool {
	switch {
	case h.nonce == "":
		return true
	case h.lastNACK != nil && h.lastNACK.Nonce == h.nonce:
		return true
	}
	return h.acked
}

// remember keeps the nonce and version of a superseded response, so that its late
// ACK still tells which version the client accepted (status only: R7 stands).
func (h *holds) remember(nonce, version string) {
	if nonce == "" {
		return
	}
	if h.previous == nil {
		h.previous = new([maxPrevious]superseded)
	}
	h.previous[h.prevNext] = superseded{nonce, version}
	h.prevNext = (h.prevNext + 1) % maxPrevious
}

// previousVersion returns the version of the superseded response nonce, if it is
// one of the few remembered.
func (h *holds) previousVersion(nonce string) (string, bool) {
	if h.previous == nil || nonce == "" {
		return "", false
	}
	for _, p := range h.previous {
		if p.nonce == nonce {
			return p.version, true
		}
	}
	return "", false
}

// hold records that a response from table t was sent.
func (h *holds) hold(t *store.Table) {
	if n := len(h.held); n > 0 && h.held[n-1] == t {
		return
	}
	if len(h.held) == maxHeld {
		// Keep the oldest (the ACKed one) and the newest; forget the middle.
		copy(h.held[1:], h.held[2:])
		h.held = h.held[:maxHeld-1]
	}
	h.held = append(h.held, t)
}

// mayHold reports whether the client may hold name: it was in the table last sent.
func (h *holds) mayHold(name string) bool {
	return h.table != nil && h.table.Get(name) != nil
}

// owed is what a client is owed of one type beyond what changed since its
// last response, and why. A response pays what it carries (paid); what make
// before break keeps (retained) lasts as long as the transition.
type owed struct {
	// all: every subscribed resource: a wildcard turned on (R9, R10), every
	// name new (R9), every dependent of a change to every cluster or listener
	// (R16), or a version this server cannot vouch for (S3, P3).
	all bool
	// names are resources the next response must carry even if unchanged: new
	// subscriptions (R9, D5), what a wildcard still covers after an
	// unsubscription (D6), the RDS/EDS of new or updated listeners and
	// clusters (R16), and explicit empty assignments whose cluster appeared
	// (P2). newNames copies the map before it adds to it, so that the set a
	// resume restores (S3) stays as it was.
	names map[string]struct{}
	// answer: the next computation answers even if nothing is to be sent: the
	// first request of a full-state or unknown type (S1), a fetch.
	answer bool
	// initial is what a reconnecting delta client said it holds
	// (initial_resource_versions, D3), until the first response answers it
	// (and, D9, what a cluster or listener may still wait for).
	initial map[string]heldVersion
	// retained are deleted resources still sent because what the client holds
	// still refers to them: make before break (R15), for as long as the
	// transition lasts (R18, R19). A map is replaced, never modified.
	retained map[string]*store.Entry
	// cdsSeen is, for EDS, the cluster table the last computation saw: a cluster
	// that appears later still owes its explicit empty assignment (P2).
	cdsSeen *store.Table
}

// nothing reports whether nothing is owed beyond what changed.
func (o *owed) nothing() bool {
	return o.initial == nil && !o.answer && !o.all && len(o.names) == 0 && len(o.retained) == 0
}

// pending reports whether the next computation owes an answer beyond what
// changed and what make before break keeps.
func (o *owed) pending() bool {
	return o.answer || o.all || len(o.names) > 0
}

// owes reports whether name is still owed: named, part of everything owed, or
// of a resume not yet answered.
func (o *owed) owes(name string) bool {
	_, named := o.names[name]
	return named || o.all || o.initial != nil
}

// name owes name.
func (o *owed) name(name string) {
	if o.names == nil {
		o.names = make(map[string]struct{})
	}
	o.names[name] = struct{}{}
}

// newNames owes the names of a request that are new to the subscription (R9),
// on a copy of names: the set before stays as it was (see resume).
func (o *owed) newNames(added []string) {
	o.names = maps.Clone(o.names)
	for _, n := range added {
		o.name(n)
	}
}

// paid records that a response was computed: what it had to carry is no
// longer owed. Make before break (retained) and a resume (initial) are settled
// by the computation itself.
func (o *owed) paid() {
	o.names, o.all, o.answer = nil, false, false
}

// resume records that a reconnecting client holds exactly the current content
// (S3, S6): nothing is owed to it but what was owed before its request
// (before, R16), which the request did not pay.
func (o *owed) resume(before map[string]struct{}) {
	o.names, o.all, o.answer = before, false, false
}
