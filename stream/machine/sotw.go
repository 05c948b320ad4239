package machine

import (
	"maps"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/leanxds/leanxds/store"
)

// SotW is the protocol state of one state-of-the-world stream (ADS or a per-type
// service). It is a pure state machine: Receive takes a request, Responses takes
// the store's current view and returns what to send. It holds no goroutine, lock,
// channel or clock (the caller passes the time of each request), so a test can
// drive it as a conversation and a fuzzer can drive it at random.
//
// A SotW is not safe for concurrent use.
type SotW struct {
	machine
}

// NewSotW returns the state of a new SotW stream.
func NewSotW(cfg Config) *SotW {
	return &SotW{newMachine(cfg)}
}

// Receive applies a request. The view is the store as the request arrives; it is
// used to recognise a reconnecting client that already holds the current content
// (S3). An error means the request is malformed: end the stream with
// codes.InvalidArgument and the error's text.
func (s *SotW) Receive(req *discoveryv3.DiscoveryRequest, at time.Time, v store.View) (Received, error) {
	rcv, err := s.receive(req, at, v)
	if err == nil {
		s.snapshot(v)
	}
	return rcv, err
}

func (s *SotW) receive(req *discoveryv3.DiscoveryRequest, at time.Time, v store.View) (Received, error) {
	if err := s.admit(req.GetTypeUrl()); err != nil {
		return Received{}, err
	}
	if err := s.limits.checkNames(req.GetTypeUrl(), sizesOf(req.GetResourceNames())); err != nil {
		return Received{}, err
	}
	ts := s.typeState(req.GetTypeUrl())
	rcv := Received{TypeURL: ts.typeURL, Served: ts.served, Kind: KindSubscribe}

	nonce := req.GetResponseNonce()
	switch {
	case nonce == "" || ts.holds.nonce == "":
		// No answer to anything of ours: a (re)subscription. A nonce when we sent
		// nothing of the type comes from an earlier stream or server (P3).
	case nonce != ts.holds.nonce:
		// R7, S5: the client has not seen our newest response yet; it will answer
		// that one, and only the newest request counts. It does say, though, that
		// the client accepted the older response: the status reports it.
		if v, ok := ts.holds.previousVersion(nonce); ok && req.GetErrorDetail() == nil {
			ts.holds.ackedVersion = v
		}
		rcv.Kind = KindStale
		return rcv, nil
	case req.GetErrorDetail() != nil:
		// R4, P1: error_detail alone makes a NACK, whatever its code. R5: the
		// version is what the client still holds. R6: nothing is re-sent; the next
		// response of this type waits for the next change.
		ts.holds.rejected(&NACK{
			Nonce:           nonce,
			Version:         req.GetVersionInfo(),
			RejectedVersion: ts.holds.version,
			Revision:        ts.holds.sentRev,
			Code:            req.GetErrorDetail().GetCode(),
			Message:         nackMessage(req.GetErrorDetail().GetMessage()),
			At:              at,
		})
		rcv.Kind, rcv.Version, rcv.NACK = KindNACK, req.GetVersionInfo(), ts.holds.lastNACK
	default:
		// R4: echoing the newest nonce without error_detail accepts that response.
		ts.holds.accepted()
		rcv.Kind, rcv.Version = KindACK, ts.holds.version
	}

	first := !ts.sub.requested
	before := ts.owed.names // answers owed before this request (R16), kept through S3
	added, wildcardOn := ts.sub.update(req.GetResourceNames())
	if wildcardOn {
		ts.owed.all = true // R9, R10: a new wildcard gets everything
	}
	switch {
	case len(added) > manyForced && len(added) == len(ts.sub.names) && len(ts.sub.globs) == 0:
		// R9: every name is new (a first request, typically): owing each of them is
		// owing the whole subscription, said once instead of name by name.
		ts.owed.all = true
	case len(added) > 0:
		ts.owed.newNames(added) // R9: newly named resources are sent even if held
	}
	if !first {
		return rcv, nil
	}
	if !ts.served || ts.fullState {
		// S1: the first request of a full-state type is answered even when empty, so
		// the client knows what exists; an unknown type is answered as empty.
		ts.owed.answer = true
	}
	if vi := req.GetVersionInfo(); vi != "" && ts.served && ts.holds.nonce == "" && ts.resumable() {
		// S3, S6: a reconnecting client names the version it holds. If that is
		// exactly what we would send, it holds the current content: nothing to
		// resend. Otherwise (P3: a version this server never sent) it holds
		// unknown content and gets everything.
		cur := v.Table(s.Scope, ts.typeURL)
		if entries := s.subscribed(v, ts, cur); digestOf(entries).Version() == vi {
			ts.holds.resumed(cur, vi, v.Revision())
			ts.owed.resume(before)
		} else {
			ts.owed.all = true
		}
	}
	return rcv, nil
}

// resumable reports whether the version of a first request on a new stream can
// prove what the client holds (S6). Only for a full-state type subscribed as a
// whole: the client then holds exactly the last response it accepted (S1), so
// the same version means the same content. A subscription that names resources
// may have dropped some of them since that response (unsubscribed, or ignored
// because the response crossed the unsubscription) while the version stayed, and
// the names it asks for now may be owed an answer the old stream never sent
// (R16): a new stream knows nothing of that, so it answers them all.
func (ts *typeState) resumable() bool {
	return ts.fullState && ts.sub.wildcard && len(ts.sub.names) == 0 && len(ts.sub.globs) == 0
}

// Responses returns what to send now that the store is at view v, in push order
// (R15), and records it as sent. Call it after every batch of requests and every
// store signal; it returns nothing when the client is current (R6).
func (s *SotW) Responses(v store.View) []*Response {
	out := s.responses(v, s.respond)
	s.viewed = v.Revision() + 1
	s.snapshot(v)
	return out
}

// respond computes the response of one type, or nil.
func (s *SotW) respond(v store.View, ts *typeState) *Response {
	cur := emptyTableFor(v, s.Scope, ts)
	s.p2Recheck(v, ts, cur)
	if ts.current(cur) {
		ts.holds.stillRejected(v.Revision())
		return nil // the common case: nothing new for this type
	}
	if !ts.sub.wildcard && len(ts.sub.names) == 0 {
		// S4: a client subscribed to nothing of the type is owed nothing.
		ts.holds.table = cur
		ts.owed.paid()
		return nil
	}
	var r *Response
	if !ts.served || ts.fullState {
		r = s.fullState(v, ts, cur)
	} else {
		r = s.incremental(v, ts, cur)
	}
	if r != nil && s.warming(v, ts, r.Resources) {
		return nil // R15: asked again after the next event, with nothing lost
	}
	old := ts.holds.table
	ts.holds.table = cur
	ts.owed.paid()
	if r == nil {
		ts.holds.stillRejected(v.Revision()) // R6: the same content as the newest response
		return nil
	}
	r.TypeURL = ts.typeURL
	r.Nonce = s.nextNonce()
	ts.holds.remember(ts.holds.nonce, ts.holds.version)
	ts.holds.sent(r, cur, v.Revision())
	s.owe(old, ts, r)
	return r
}

// fullState computes an LDS/CDS/SRDS response: every subscribed resource, every
// time (S1), plus what make-before-break keeps (R15).
func (s *SotW) fullState(v store.View, ts *typeState, cur *store.Table) *Response {
	entries := s.subscribed(v, ts, cur)
	full := ts.sub.wildcard && len(entries) == cur.Len()
	retained := s.retain(v, ts, cur)
	if len(retained) > 0 {
		full = false
		for _, e := range retained {
			entries = append(entries, e)
		}
		slices.SortFunc(entries, byName)
	}
	changed := ts.owed.pending() || !sameRetained(ts.owed.retained, retained)
	ts.owed.retained = retained
	if !changed && !s.differs(ts, cur) {
		return nil
	}
	version := digestOf(entries).Version()
	if version == ts.holds.version && !ts.owed.pending() {
		return nil // R6: the same content again is not a change
	}
	return &Response{Version: version, Resources: entries, Whole: full, Table: cur}
}

// incremental computes an RDS/EDS/... response: only what changed or must be
// re-sent (S2, R9, R16). Deleted resources are simply left out: in SotW that
// deletes nothing (S2), and the client drops them when nothing refers to them.
func (s *SotW) incremental(v store.View, ts *typeState, cur *store.Table) *Response {
	var all []*store.Entry // every subscribed resource, sorted; computed at most once
	subscribed := func() []*store.Entry {
		if all == nil {
			all = s.subscribedShared(v, ts, cur)
		}
		return all
	}
	var entries []*store.Entry
	switch {
	case ts.owed.all:
		entries = subscribed()
	case len(ts.owed.names) > manyForced:
		// R16 after a change of many clusters or listeners: pick what is owed from
		// the subscription, already sorted, rather than sorting the names.
		changed := s.changed(ts, cur)
		for _, e := range subscribed() {
			if _, ok := slices.BinarySearch(changed, e.Name); ok || forced(ts, e.Name) {
				entries = append(entries, e)
			}
		}
	default:
		names := s.changed(ts, cur)
		for _, n := range expandGlobs(ts, cur, slices.Collect(maps.Keys(ts.owed.names))) {
			if ts.sub.subscribes(n) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		for _, n := range names {
			if e := s.lookup(v, ts, cur, n); e != nil {
				entries = append(entries, e)
			}
		}
	}
	if len(entries) == 0 && !ts.owed.answer {
		return nil // R14: what is asked but missing is sent when it appears
	}
	return &Response{Version: s.subscribedDigest(v, ts, cur, subscribed).Version(), Resources: entries, Table: cur}
}

// manyForced is the number of forced names above which incremental picks them
// from the sorted subscription instead of sorting them.
const manyForced = 32

// forced reports whether name is owed to the client whatever changed (R9, R16):
// named in owed.names, or a member of a glob collection named there (X2).
func forced(ts *typeState, name string) bool {
	if _, ok := ts.owed.names[name]; ok {
		return true
	}
	if len(ts.sub.globs) == 0 {
		return false
	}
	for n := range ts.owed.names {
		if g, ok := ts.sub.globs[n]; ok && g.Matches(name) {
			return true
		}
	}
	return false
}

// Fetch answers a unary Fetch call: the resources req names, now, in one
// response, whatever the client may hold (a fetch has no stream to remember it
// by). An error means the request is malformed; nil and no error, that no
// response could be computed, which owing the answer rules out.
func Fetch(cfg Config, req *discoveryv3.DiscoveryRequest, at time.Time, v store.View) (*Response, error) {
	s := NewSotW(cfg)
	fresh := &discoveryv3.DiscoveryRequest{TypeUrl: req.GetTypeUrl(), ResourceNames: req.GetResourceNames(), Node: req.GetNode()}
	if _, err := s.receive(fresh, at, v); err != nil {
		return nil, err
	}
	s.typeState(fresh.TypeUrl).owed.answer = true // answered even when empty
	if rs := s.responses(v, s.respond); len(rs) > 0 {
		return rs[0], nil
	}
	return nil, nil // cannot happen: an answer owed is always given
}
