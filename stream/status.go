package stream

import (
	"maps"
	"slices"
	"time"

	"github.com/leanxds/leanxds/store"
)

// StreamStatus is a connected stream as the server sees it.
type StreamStatus struct {
	StreamInfo
	// Types holds one entry per type URL the client requested, in push order.
	Types []TypeStatus
}

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

// status reads the state machine under the stream's lock.
func (c *conn) status() StreamStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := StreamStatus{StreamInfo: c.info}
	if c.sm == nil {
		return st
	}
	st.Types = c.sm.base().status(c.srv.store.View())
	return st
}

// Status returns the state of each requested type, in push order, with the
// store at view v.
func (s *SotW) Status(v store.View) []TypeStatus { return s.status(v) }

// Status returns the state of each requested type, in push order, with the
// store at view v.
func (d *Delta) Status(v store.View) []TypeStatus { return d.status(v) }

func (m *machine) status(v store.View) []TypeStatus {
	var out []TypeStatus
	for _, ts := range m.types {
		if !ts.sub.requested {
			continue
		}
		t := TypeStatus{
			TypeURL:      ts.typeURL,
			Served:       ts.served,
			Wildcard:     ts.sub.wildcard,
			Names:        slices.Clone(ts.sub.sortedNames()),
			VersionSent:  ts.version,
			NonceSent:    ts.nonce,
			VersionACKed: ts.ackedVersion,
		}
		for _, n := range slices.Sorted(maps.Keys(ts.retained)) {
			t.Retained = append(t.Retained, ts.retained[n])
		}
		if ts.lastNACK != nil {
			n := *ts.lastNACK
			t.LastNACK = &n
		}
		cur := emptyTableFor(v, m.Scope, ts)
		for _, n := range t.Names {
			if _, glob := ts.sub.globs[n]; !glob && ts.retained[n] == nil && m.lookup(v, ts, cur, n) == nil {
				t.Missing = append(t.Missing, n)
			}
		}
		out = append(out, t)
	}
	return out
}

// sentAt remembers when the newest response of a type was sent, for the ACK
// latency hook, and whether the client has answered it.
type sentAt struct {
	typeURL  string
	at       time.Time
	answered bool
}
