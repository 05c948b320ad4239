package machine

import (
	"github.com/leanxds/leanxds/store"
)

// holds is what the client holds of one type, as far as the server knows: the
// responses it was sent and how it answered them.
type holds struct {
	// nonce and version are those of the newest response of this type (R1, R7).
	nonce   string
	version string
	// sentRev is the store revision of the view the newest response was made
	// from (or, after a resume, of the view that proved what the client holds).
	sentRev uint64
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
	// nacked: the client's newest answer of this type is lastNACK.
	nacked bool
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

// sent records a new response of the type, computed from table t of a view at
// store revision rev: t may now be held. (SotW remembers the response it
// replaces first, for a late ACK.)
func (h *holds) sent(r *Response, t *store.Table, rev uint64) {
	h.nonce, h.version, h.acked, h.sentRev = r.Nonce, r.Version, false, rev
	h.hold(t)
}

// accepted records that the client ACKed the newest response (R4): it holds
// its table, and nothing older any more.
func (h *holds) accepted() {
	h.ackedVersion, h.acked, h.nacked = h.version, true, false
	h.held = append(h.held[:0], h.table)
}

// rejected records the client's NACK n of a response of the type.
func (h *holds) rejected(n *NACK) {
	h.lastNACK, h.nacked = n, true
}

// stillRejected records that a view at store revision rev sends the client
// nothing new of the type: when its newest answer is a NACK of the newest
// response, the content it rejected is the content of rev too, so the NACK
// counts as a rejection of rev (Standing; R26). The NACK is replaced, not
// modified: status snapshots share it.
func (h *holds) stillRejected(rev uint64) {
	if h.nacked && h.lastNACK != nil && h.lastNACK.Nonce == h.nonce && h.lastNACK.Revision < rev {
		n := *h.lastNACK
		n.Revision = rev
		h.lastNACK = &n
	}
}

// resumed records that a client on a new stream holds table t at version
// (S3, S6), as if it had been sent and ACKed here, from a view at revision rev.
func (h *holds) resumed(t *store.Table, version string, rev uint64) {
	h.table, h.version, h.ackedVersion, h.sentRev = t, version, version, rev
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
