package stream

import (
	"slices"
	"time"

	"github.com/leanxds/leanxds/protocol"
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
	m := c.sm.base()
	v := c.srv.store.View()
	for _, ts := range m.types {
		if !ts.sub.requested {
			continue
		}
		typeURL := ts.typeURL
		t := TypeStatus{
			TypeURL:      typeURL,
			Served:       ts.served,
			Wildcard:     ts.sub.wildcard,
			Names:        slices.Clone(ts.sub.sortedNames()),
			VersionSent:  ts.version,
			NonceSent:    ts.nonce,
			VersionACKed: ts.ackedVersion,
		}
		if ts.lastNACK != nil {
			n := *ts.lastNACK
			t.LastNACK = &n
		}
		cur := emptyTableFor(v, m.Scope, ts)
		for _, n := range t.Names {
			if _, glob := ts.sub.globs[n]; !glob && m.lookup(v, ts, cur, n) == nil {
				t.Missing = append(t.Missing, n)
			}
		}
		st.Types = append(st.Types, t)
	}
	slices.SortFunc(st.Types, func(a, b TypeStatus) int { return protocol.PushOrder(a.TypeURL, b.TypeURL) })
	return st
}

// sentAt remembers when the newest response of a type was sent, for the ACK
// latency hook.
type sentAt struct {
	typeURL string
	at      time.Time
}
