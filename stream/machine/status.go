package machine

import (
	"maps"
	"slices"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// TypeStatus is the state of one type on a stream.
type TypeStatus struct {
	TypeURL string
	// Served is false for a type leanxds does not serve (answered as empty).
	Served bool
	// Wildcard is true when the client subscribes to every resource of the type.
	Wildcard bool
	// Names are the explicitly subscribed names, sorted.
	Names []string
	// Missing are subscribed names the store does not hold (R14).
	Missing []string
	// Retained are resources the store no longer holds that the client is
	// still sent, by name: make before break keeps them while the client may
	// hold listeners or routes of an earlier revision that use them (R15, R18).
	// A retained name is not Missing: the client has it.
	Retained []*store.Entry
	// VersionSent and NonceSent are those of the newest response.
	VersionSent string
	NonceSent   string
	// SentRevision is the store revision of the view the newest response was
	// made from (0 before any): with a Router, the revision of the view the
	// node is served, which may be older than the store's.
	SentRevision uint64
	// VersionACKed is the version of the newest response the client accepted.
	VersionACKed string
	// LastNACK is the newest rejection, if any.
	LastNACK *NACK
}

// Status is an immutable snapshot of a machine after a step (Receive or
// Responses): what each requested type was subscribed, sent, ACKed and NACKed,
// with the store tables it was computed against. A machine hands out a new one
// after every step that changed any of that, and the same one otherwise, so the
// loop around it can publish it (an atomic pointer) for status pages and CSDS to
// read without locking the machine. A nil *Status is the status of a machine
// that has received nothing.
type Status struct {
	types []typeSnapshot
	// viewed is 1 + ViewRevision, 0 before the first Responses; ackedRev is
	// ACKedRevision.
	viewed, ackedRev uint64
	// one holds types when there is only one (a per-type service's stream):
	// such a snapshot costs one allocation.
	one [1]typeSnapshot
}

// typeSnapshot is one requested type in a Status. Every field is immutable:
// names is an interned or replaced slice, retained a map a machine replaces
// and never modifies, lastNACK a NACK it never modifies.
type typeSnapshot struct {
	typeURL          string
	served, wildcard bool
	// ok: the client ACKed the newest response of the type, or was sent none;
	// answered: it ACKed or NACKed it, or was sent none; nacked: its newest
	// answer is lastNACK; owes: the machine owes the type an answer it has
	// not computed yet (a new subscription, R9, R16; the first request, S1).
	// (Beside served and wildcard, they take no room of their own.)
	ok, answered, nacked, owes bool
	names                      []string
	retained                   map[string]*store.Entry
	version, nonce             string
	acked                      string
	sentRev                    uint64
	lastNACK                   *NACK
	cur, cds                   *store.Table
}

// Types returns the state of each requested type, in push order (R15).
func (st *Status) Types() []TypeStatus {
	if st == nil {
		return nil
	}
	out := make([]TypeStatus, 0, len(st.types))
	for _, s := range st.types {
		t := TypeStatus{
			TypeURL:      s.typeURL,
			Served:       s.served,
			Wildcard:     s.wildcard,
			Names:        slices.Clone(s.names),
			VersionSent:  s.version,
			NonceSent:    s.nonce,
			SentRevision: s.sentRev,
			VersionACKed: s.acked,
		}
		for _, n := range slices.Sorted(maps.Keys(s.retained)) {
			t.Retained = append(t.Retained, s.retained[n])
		}
		if s.lastNACK != nil {
			n := *s.lastNACK
			t.LastNACK = &n
		}
		for _, n := range s.names {
			if _, glob := protocol.ParseGlob(n); glob || s.retained[n] != nil || s.cur.Get(n) != nil {
				continue
			}
			if s.typeURL == protocol.TypeEndpoint && s.cds != nil && usedByClusterIn(s.cds, n) {
				continue // P2: answered with an explicit empty assignment
			}
			t.Missing = append(t.Missing, n)
		}
		out = append(out, t)
	}
	return out
}

// snapshot returns the status of m with the store at view v: the previous one
// when nothing it shows changed.
func (m *machine) snapshot(v store.View) *Status {
	prev := m.snap
	n := 0
	same := prev != nil
	settled := m.viewed > 0
	for _, ts := range m.types {
		if !ts.sub.requested {
			continue
		}
		s := m.typeSnapshot(v, ts)
		if same && (n >= len(prev.types) || !prev.types[n].equal(&s)) {
			same = false
		}
		settled = settled && s.ok && !s.owes
		n++
	}
	if settled {
		m.ackedRev = m.viewed - 1
	}
	if same && n == len(prev.types) && prev.viewed == m.viewed && prev.ackedRev == m.ackedRev {
		return prev
	}
	st := &Status{viewed: m.viewed, ackedRev: m.ackedRev}
	if n == 1 {
		st.types = st.one[:0]
	} else {
		st.types = make([]typeSnapshot, 0, n)
	}
	for _, ts := range m.types {
		if ts.sub.requested {
			st.types = append(st.types, m.typeSnapshot(v, ts))
		}
	}
	m.snap = st
	return st
}

func (m *machine) typeSnapshot(v store.View, ts *typeState) typeSnapshot {
	s := typeSnapshot{
		typeURL:  ts.typeURL,
		served:   ts.served,
		wildcard: ts.sub.wildcard,
		names:    ts.sub.sortedNames(),
		retained: ts.owed.retained,
		version:  ts.holds.version,
		nonce:    ts.holds.nonce,
		acked:    ts.holds.ackedVersion,
		sentRev:  ts.holds.sentRev,
		lastNACK: ts.holds.lastNACK,
		cur:      emptyTableFor(v, m.Scope, ts),
		ok:       ts.holds.nonce == "" || ts.holds.acked,
		answered: ts.holds.answered(),
		nacked:   ts.holds.nacked,
		owes:     ts.holds.table == nil || ts.owed.initial != nil || ts.owed.pending(),
	}
	if ts.typeURL == protocol.TypeEndpoint {
		s.cds = v.Table(m.Scope, protocol.TypeCluster)
	}
	return s
}

// equal reports whether two snapshots of a type show the same.
func (s *typeSnapshot) equal(o *typeSnapshot) bool {
	return s.typeURL == o.typeURL && s.served == o.served && s.wildcard == o.wildcard &&
		sameSlice(s.names, o.names) && sameMap(s.retained, o.retained) &&
		s.version == o.version && s.nonce == o.nonce && s.acked == o.acked &&
		s.lastNACK == o.lastNACK && s.cur == o.cur && s.cds == o.cds &&
		s.sentRev == o.sentRev && s.ok == o.ok && s.answered == o.answered &&
		s.nacked == o.nacked && s.owes == o.owes
}

// sameSlice reports whether a and b are the same slice (not merely equal).
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// sameMap reports whether a and b are the same map, or both empty.
func sameMap(a, b map[string]*store.Entry) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return len(a) == len(b) && sameRetained(a, b)
}

// ViewRevision returns the store revision of the view the machine last
// computed what to send at (its newest Responses), 0 before its first. With a
// Router it is the revision of the view the node is served. A Receive does not
// change it: what a request owes is only known once Responses computed it.
func (st *Status) ViewRevision() uint64 {
	if st == nil || st.viewed == 0 {
		return 0
	}
	return st.viewed - 1
}

// ACKedRevision returns the newest ViewRevision at which the client had
// ACKed every response it was sent and was owed nothing more: the newest store
// revision it is known to run. 0 when none yet.
func (st *Status) ACKedRevision() uint64 {
	if st == nil {
		return 0
	}
	return st.ackedRev
}

// Standing is where a stream stands against a store revision (Status.Standing).
type Standing struct {
	// ACKed: the machine computed what to send at a view at or past the
	// revision (ViewRevision), the client ACKed every response it was sent
	// and nothing more is owed. A client whose subscriptions the revision did
	// not change is ACKed without a new response: versions are digests of
	// content.
	ACKed bool
	// NACK, when not nil, is the rejection of a response made from a view at
	// or past the revision, or of content such a view read since would send
	// unchanged (R26): the newest answer of type TypeURL.
	NACK    *NACK
	TypeURL string
	// Answered: the client has answered (ACK or NACK) every response it was
	// sent; a request of it will make the stream read the store again.
	Answered bool
}

// Standing returns where the stream stands against store revision rev. A nil
// Status (nothing received) is pending and answered. It allocates nothing.
func (st *Status) Standing(rev uint64) Standing {
	out := Standing{Answered: true}
	if st == nil {
		return out
	}
	out.ACKed = st.viewed > rev // read a view at or past rev
	for i := range st.types {
		s := &st.types[i]
		if s.nacked && s.lastNACK.Revision >= rev && out.NACK == nil {
			out.NACK, out.TypeURL = s.lastNACK, s.typeURL
		}
		if !s.ok || s.owes {
			out.ACKed = false
		}
		if !s.answered {
			out.Answered = false
		}
	}
	if out.NACK != nil {
		out.ACKed = false
	}
	return out
}
