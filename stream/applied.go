package stream

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/leanxds/leanxds/stream/machine"
)

// Who runs what: for a store revision and a set of nodes, which nodes run
// content at or past it, which rejected it, and which have not answered yet.
//
// Each stream's machine records, per type, the store revision of the view its
// newest response was made from, and the revision of the view it last
// computed what to send at (machine.Status.ViewRevision); with a Router, that
// is the view the node is served. A stream stands against revision R:
//
//   - ACKed when it last computed what to send at a view at or past R, its
//     client ACKed every response it was sent, and nothing more is owed to it
//     (versions are digests of content: a node whose subscriptions R did not
//     change needs no new response to be ACKed for R: R20);
//   - NACKed when the newest answer of some type is a NACK of a response made
//     from a view at or past R (R21), or of a response whose content a view at
//     or past R, read since, would send it again unchanged (R26: the rejected
//     content is R's too);
//   - pending otherwise: a response is unanswered or not computed yet, the
//     stream has not read a view at or past R, or the client NACKed a response
//     of an earlier view and still runs what it held before.
//
// A node is judged by its newest stream of each service (ADS, or a per-type
// service): an old stream still open after a reconnect does not count, and a
// node with no open stream is not listed. It is NACKed when any of those
// streams is, ACKed when all are, and pending otherwise (R22).

// NodeState is where a node stands against a revision.
type NodeState int

const (
	// NodePending: the node has not yet ACKed content at or past the revision
	// (a response is on its way or unanswered, or it was not sent it yet).
	NodePending NodeState = iota
	// NodeACKed: the node runs content at or past the revision: at a view at or
	// past it, everything the node was owed was sent and ACKed. A node whose
	// subscriptions the revision did not change is ACKed without a new response
	// (versions are digests of content).
	NodeACKed
	// NodeNACKed: the node rejected a response made at or past the revision.
	NodeNACKed
)

func (s NodeState) String() string {
	switch s {
	case NodeACKed:
		return "acked"
	case NodeNACKed:
		return "nacked"
	}
	return "pending"
}

// MarshalText makes a NodeState its name in JSON.
func (s NodeState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Rejection is a NACK a node sent.
type Rejection struct {
	TypeURL string `json:"type_url"`
	// Version is the version of the response rejected.
	Version string `json:"version"`
	// Revision is the store revision of the view the rejected response was
	// made from, or of a newer view read since that would send the same
	// content (R26).
	Revision uint64 `json:"revision"`
	// Detail is the client's error_detail message.
	Detail string    `json:"detail"`
	At     time.Time `json:"at"`
}

// NodeApplied is one node's standing against a revision.
type NodeApplied struct {
	NodeID string `json:"node_id"`
	// Scope is the scope its newest stream is served.
	Scope string    `json:"scope"`
	State NodeState `json:"state"`
	// Revision is the newest store revision the node is known to run (0 when
	// none yet): the newest its stream read having ACKed all it was sent
	// (machine.Status.ACKedRevision); of a node with several streams, the
	// oldest of theirs.
	Revision uint64 `json:"revision"`
	// Rejection is the NACK when State is NodeNACKed.
	Rejection *Rejection `json:"rejection,omitempty"`
}

// Applied is where a set of nodes stands against a revision.
type Applied struct {
	Revision uint64 `json:"revision"`
	// Nodes are the selected nodes connected now, by node id.
	Nodes  []NodeApplied `json:"nodes"`
	ACKed  int           `json:"acked"`
	NACKed int           `json:"nacked"`
	// Pending counts the nodes neither ACKed nor NACKed.
	Pending int `json:"pending"`
}

// Done reports whether every node ACKed, or any NACKed.
func (a *Applied) Done() bool { return a.NACKed > 0 || a.Pending == 0 }

// Applied returns where the nodes sel selects stand against revision rev now.
// The nodes are those connected now (whose first request named them): a node
// that disconnects leaves the set. It reads the immutable status each stream
// publishes, and takes no stream's lock.
func (s *Server) Applied(rev uint64, sel Selector) Applied {
	conns := s.all()
	return aggregate(rev, &sel, len(conns), func(yield func(*StreamInfo, *machine.Status)) {
		for _, c := range conns {
			if c.opened.Load() {
				yield(c.shownInfo.Load(), c.shownStatus.Load())
			}
		}
	})
}

// StreamSnapshot is what Applied reads of one stream: its identity and its
// machine's newest status snapshot.
type StreamSnapshot struct {
	Info   StreamInfo
	Status *machine.Status
}

// AppliedOf returns where the nodes of streams that sel selects stand against
// rev, as Server.Applied does for a server's open streams: for streams a
// caller steps itself (Session).
func AppliedOf(rev uint64, sel Selector, streams []StreamSnapshot) Applied {
	return aggregate(rev, &sel, len(streams), func(yield func(*StreamInfo, *machine.Status)) {
		for i := range streams {
			yield(&streams[i].Info, streams[i].Status)
		}
	})
}

// WaitApplied waits until every node sel selects runs content at or past rev,
// or any rejected it (Applied.Done), or ctx ends; it returns where they stand
// then, with ctx's error if it ended first.
func (s *Server) WaitApplied(ctx context.Context, rev uint64, sel Selector) (Applied, error) {
	return s.WaitFor(ctx, rev, sel, (*Applied).Done)
}

// WaitFor waits until done reports true of where the nodes sel selects stand
// against rev, or ctx ends; it returns where they stand then, with ctx's
// error if it ended first. The nodes are those connected at each look (see
// Applied).
//
// It first wakes, once, the selected streams that have not read a view at or
// past rev and have nothing unanswered: they read the store again, so a node
// whose subscriptions rev did not change becomes ACKed without a response.
// (A stream with a response unanswered reads it again when its client
// answers.) Then it looks again each time a stream's standing may have
// changed (an ACK, a NACK, a stream reading a newer view, opening or
// closing), at most every WaitInterval, or four times as long as a look
// takes when that is longer (with many thousands of streams).
func (s *Server) WaitFor(ctx context.Context, rev uint64, sel Selector, done func(*Applied) bool) (Applied, error) {
	p := &s.progress
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	s.wakeBehind(rev, &sel)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		changed := p.changed() // before looking: a change after it closes it
		looked := time.Now()
		a := s.Applied(rev, sel)
		if done(&a) {
			return a, nil
		}
		// A look at many thousands of streams takes milliseconds: the next
		// waits four times that, so that a wait takes at most a fifth of a core.
		interval := max(WaitInterval, 4*time.Since(looked))
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Applied(rev, sel), ctx.Err()
		}
		wait := interval - time.Since(looked)
		if wait <= 0 {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return s.Applied(rev, sel), ctx.Err()
		}
	}
}

// WaitInterval is the shortest time between two looks of WaitFor: a fleet
// ACKing a change wakes it once per interval, not once per ACK.
const WaitInterval = 10 * time.Millisecond

// wakeBehind wakes the open streams sel selects that last read a view older
// than rev and have nothing unanswered.
func (s *Server) wakeBehind(rev uint64, sel *Selector) {
	for _, c := range s.all() {
		if !c.opened.Load() {
			continue
		}
		info, st := c.shownInfo.Load(), c.shownStatus.Load()
		if st.ViewRevision() < rev && sel.Matches(info.Scope, info.Node) && st.Standing(rev).Answered {
			c.watcher.Signal()
		}
	}
}

// progress is the server's broadcast that a stream's standing may have
// changed: a channel closed, and replaced, on each change while anyone waits.
// Streams signal it only while a waiter is registered, so a server nobody
// waits on pays one atomic load per ACK.
type progress struct {
	waiters atomic.Int32
	ch      atomic.Pointer[chan struct{}]
}

// signal tells the waiters that a stream's standing may have changed.
func (p *progress) signal() {
	if p.waiters.Load() == 0 || p.ch.Load() == nil {
		return
	}
	if c := p.ch.Swap(nil); c != nil {
		close(*c)
	}
}

// changed returns the channel the next signal closes.
func (p *progress) changed() <-chan struct{} {
	for {
		if c := p.ch.Load(); c != nil {
			return *c
		}
		c := make(chan struct{})
		if p.ch.CompareAndSwap(nil, &c) {
			return c
		}
	}
}

// judged is a stream a node is judged by: its newest of a service.
type judged struct {
	info *StreamInfo
	st   *machine.Status
	// next is the index of the node's next stream judged, -1 for none.
	next int
}

// aggregate judges the nodes of the streams each yields that sel selects;
// n is about how many it yields.
func aggregate(rev uint64, sel *Selector, n int, each func(yield func(*StreamInfo, *machine.Status))) Applied {
	// js holds, per node, its newest stream of each service: first[id] is the
	// index of its first, next chains the others (most nodes have one).
	js := make([]judged, 0, n)
	first := make(map[string]int, n)
	each(func(info *StreamInfo, st *machine.Status) {
		if !sel.Matches(info.Scope, info.Node) {
			return
		}
		i, known := first[info.NodeID]
		if !known {
			first[info.NodeID] = len(js)
			js = append(js, judged{info, st, -1})
			return
		}
		for ; ; i = js[i].next {
			if js[i].info.Service == info.Service {
				if info.ID > js[i].info.ID {
					js[i].info, js[i].st = info, st
				}
				return
			}
			if js[i].next < 0 {
				js[i].next = len(js)
				js = append(js, judged{info, st, -1})
				return
			}
		}
	})
	a := Applied{Revision: rev, Nodes: make([]NodeApplied, 0, len(first))}
	for id, i := range first {
		n := NodeApplied{NodeID: id, State: NodeACKed, Revision: js[i].st.ACKedRevision()}
		var newest uint64
		var rejected *judged // the rejection reported: of the first service by name
		var nack machine.Standing
		for ; i >= 0; i = js[i].next {
			j := &js[i]
			if j.info.ID > newest {
				newest, n.Scope = j.info.ID, j.info.Scope
			}
			n.Revision = min(n.Revision, j.st.ACKedRevision())
			sd := j.st.Standing(rev)
			switch {
			case sd.NACK != nil:
				if rejected == nil || j.info.Service < rejected.info.Service {
					rejected, nack = j, sd
				}
			case !sd.ACKed:
				n.State = NodePending
			}
		}
		if rejected != nil {
			n.State = NodeNACKed
			n.Rejection = &Rejection{
				TypeURL:  nack.TypeURL,
				Version:  nack.NACK.RejectedVersion,
				Revision: nack.NACK.Revision,
				Detail:   nack.NACK.Message,
				At:       nack.NACK.At,
			}
		}
		switch n.State {
		case NodeACKed:
			a.ACKed++
		case NodeNACKed:
			a.NACKed++
		default:
			a.Pending++
		}
		a.Nodes = append(a.Nodes, n)
	}
	slices.SortFunc(a.Nodes, func(x, y NodeApplied) int { return cmp.Compare(x.NodeID, y.NodeID) })
	return a
}
