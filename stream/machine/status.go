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
	names            []string
	retained         map[string]*store.Entry
	version, nonce   string
	acked            string
	lastNACK         *NACK
	cur, cds         *store.Table
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
	for _, ts := range m.types {
		if !ts.sub.requested {
			continue
		}
		s := m.typeSnapshot(v, ts)
		if same && (n >= len(prev.types) || !prev.types[n].equal(&s)) {
			same = false
		}
		n++
	}
	if same && n == len(prev.types) {
		return prev
	}
	st := new(Status)
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
		lastNACK: ts.holds.lastNACK,
		cur:      emptyTableFor(v, m.Scope, ts),
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
		s.lastNACK == o.lastNACK && s.cur == o.cur && s.cds == o.cds
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
