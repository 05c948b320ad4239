package stream

import (
	"fmt"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/leanxds/leanxds/protocol"
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
	// Scope is the scope whose resources the stream is served.
	Scope string
	// Node is the node of the stream's first request (R2).
	Node *corev3.Node

	limits Limits
	// nonces counts the responses made on the stream; each nonce is its count (R1).
	nonces uint64
	types  map[string]*sotwType
}

// Limits bound what one client may ask of the server.
type Limits struct {
	// MaxNames is the most resource names one request may carry; 0 means 100,000.
	MaxNames int
}

func (l Limits) maxNames() int {
	if l.MaxNames > 0 {
		return l.MaxNames
	}
	return 100_000
}

// sotwType is the state of one type URL on a SotW stream: each type is its own
// request/response sequence with its own version and nonce (R3).
type sotwType struct {
	typeURL string
	info    protocol.TypeInfo
	// served is false for a type leanxds does not serve: it is answered as empty.
	served bool
	sub    subscription

	// nonce and version are those of the newest response of this type (R1, R7).
	nonce   string
	version string
	// table is the table the client's content matches for every subscribed name,
	// once it applies the newest response; nil before anything was sent.
	table *store.Table
	// retained are deleted resources still sent because what the client holds
	// still refers to them: make before break (R15).
	retained map[string]*store.Entry
	// force names resources the next response must carry even if unchanged: new
	// subscriptions (R9) and the RDS/EDS of new or updated listeners and clusters (R16).
	force map[string]struct{}
	// forceAll makes the next response carry every subscribed resource.
	forceAll bool
	// respond makes the next computation answer even if nothing is to be sent
	// (the first request of a full-state or unknown type).
	respond bool

	// ackedVersion is the version of the newest response the client ACKed.
	ackedVersion string
	// held are the tables the client may hold content of: the one it last ACKed
	// and every one sent since (oldest first, at most maxHeld). Make before
	// break (R15) keeps what any of them still uses.
	held []*store.Table
	// lastNACK is the newest NACK of this type.
	lastNACK *NACK
}

// NACK is a client's rejection of a response.
type NACK struct {
	// Nonce is the nonce of the rejected response.
	Nonce string
	// Version is the version the client still holds, the last it accepted (R5).
	Version string
	// RejectedVersion is the version_info of the rejected response.
	RejectedVersion string
	// Code and Message are the client's error_detail. Only its presence makes a
	// NACK (P1): the code differs from client to client.
	Code    int32
	Message string
	// At is when the NACK arrived.
	At time.Time
}

// Kind classifies a request.
type Kind uint8

// The kinds of request.
const (
	// KindSubscribe is a request that is not an answer to a response: a first
	// request, or a change of subscription without a nonce.
	KindSubscribe Kind = iota + 1
	// KindACK accepts the newest response of its type (R4).
	KindACK
	// KindNACK rejects the newest response of its type (R4).
	KindNACK
	// KindStale carries a nonce older than the newest response of its type: it is
	// ignored (R7).
	KindStale
)

func (k Kind) String() string {
	switch k {
	case KindSubscribe:
		return "subscribe"
	case KindACK:
		return "ack"
	case KindNACK:
		return "nack"
	case KindStale:
		return "stale"
	}
	return "unknown"
}

// Received describes a request after Receive classified it.
type Received struct {
	TypeURL string
	Kind    Kind
	// Served is false for a type leanxds does not serve.
	Served bool
	// Version is the version ACKed (KindACK) or still held (KindNACK).
	Version string
	// NACK is set for KindNACK.
	NACK *NACK
}

// NewSotW returns the state of a new SotW stream serving scope to node.
func NewSotW(scope string, node *corev3.Node, limits Limits) *SotW {
	return &SotW{Scope: scope, Node: node, limits: limits, types: make(map[string]*sotwType)}
}

func (s *SotW) typeState(typeURL string) *sotwType {
	ts := s.types[typeURL]
	if ts == nil {
		info, served := protocol.Lookup(typeURL)
		ts = &sotwType{typeURL: typeURL, info: info, served: served}
		s.types[typeURL] = ts
	}
	return ts
}

// Receive applies a request. The view is the store as the request arrives; it is
// used to recognise a reconnecting client that already holds the current content
// (S3). An error means the request is malformed: end the stream with
// codes.InvalidArgument and the error's text.
func (s *SotW) Receive(req *discoveryv3.DiscoveryRequest, at time.Time, v store.View) (Received, error) {
	if req.GetTypeUrl() == "" {
		return Received{}, fmt.Errorf("request without type_url")
	}
	if n := len(req.GetResourceNames()); n > s.limits.maxNames() {
		return Received{}, fmt.Errorf("request for %s names %d resources, more than the limit of %d",
			protocol.Short(req.GetTypeUrl()), n, s.limits.maxNames())
	}
	ts := s.typeState(req.GetTypeUrl())
	rcv := Received{TypeURL: ts.typeURL, Served: ts.served, Kind: KindSubscribe}

	nonce := req.GetResponseNonce()
	switch {
	case ts.nonce != "" && nonce != ts.nonce:
		// R7, S5: the client has not seen our newest response yet; it will answer
		// that one, and only the newest request counts.
		rcv.Kind = KindStale
		return rcv, nil
	case ts.nonce != "" && req.GetErrorDetail() != nil:
		// R4, P1: error_detail alone makes a NACK, whatever its code. R5: the
		// version is what the client still holds. R6: nothing is re-sent; the next
		// response of this type waits for the next change.
		ts.lastNACK = &NACK{
			Nonce:           nonce,
			Version:         req.GetVersionInfo(),
			RejectedVersion: ts.version,
			Code:            req.GetErrorDetail().GetCode(),
			Message:         req.GetErrorDetail().GetMessage(),
			At:              at,
		}
		rcv.Kind, rcv.Version, rcv.NACK = KindNACK, req.GetVersionInfo(), ts.lastNACK
	case ts.nonce != "":
		// R4: echoing the newest nonce without error_detail accepts that response.
		ts.ackedVersion = ts.version
		ts.held = append(ts.held[:0], ts.table)
		rcv.Kind, rcv.Version = KindACK, ts.version
	}

	first := !ts.sub.requested
	added, wildcardOn := ts.sub.update(req.GetResourceNames())
	if wildcardOn {
		ts.forceAll = true // R9, R10: a new wildcard gets everything
	}
	for _, n := range added {
		if ts.force == nil {
			ts.force = make(map[string]struct{})
		}
		ts.force[n] = struct{}{} // R9: newly named resources are sent even if held
	}
	if !first {
		return rcv, nil
	}
	if !ts.served || ts.info.FullState {
		// S1: the first request of a full-state type is answered even when empty, so
		// the client knows what exists; an unknown type is answered as empty.
		ts.respond = true
	}
	if vi := req.GetVersionInfo(); vi != "" && ts.served && ts.nonce == "" {
		// S3: a reconnecting client names the version it holds. If that is exactly
		// what we would send, it holds the current content: nothing to resend.
		// Otherwise (P3: a version this server never sent) it holds unknown content
		// and gets everything.
		cur := v.Table(s.Scope, ts.typeURL)
		if entries := s.subscribed(v, ts, cur); digestOf(entries).Version() == vi {
			ts.table, ts.version = cur, vi
			ts.ackedVersion = vi
			ts.held = []*store.Table{cur}
			ts.force, ts.forceAll, ts.respond = nil, false, false
		} else {
			ts.forceAll = true
		}
	}
	return rcv, nil
}

// Responses returns what to send now that the store is at view v, in push order
// (R15), and records it as sent. Call it after every batch of requests and every
// store signal; it returns nothing when the client is current (R6).
func (s *SotW) Responses(v store.View) []*Response {
	var out []*Response
	for _, typeURL := range s.typeOrder() {
		ts := s.types[typeURL]
		if r := s.respond(v, ts); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// typeOrder returns the requested types in push order (R15).
func (s *SotW) typeOrder() []string {
	order := make([]string, 0, len(s.types))
	for u, ts := range s.types {
		if ts.sub.requested {
			order = append(order, u)
		}
	}
	slices.SortFunc(order, protocol.PushOrder)
	return order
}

func (s *SotW) nextNonce() string {
	s.nonces++
	return protocol.FormatNonce(s.nonces)
}

// respond computes the response of one type, or nil.
func (s *SotW) respond(v store.View, ts *sotwType) *Response {
	cur := emptyTableFor(v, s.Scope, ts)
	if cur == ts.table && !ts.respond && !ts.forceAll && len(ts.force) == 0 && len(ts.retained) == 0 {
		return nil // the common case: nothing new for this type
	}
	if !ts.sub.wildcard && len(ts.sub.names) == 0 {
		// S4: a client subscribed to nothing of the type is owed nothing.
		ts.table = cur
		ts.force, ts.forceAll, ts.respond = nil, false, false
		return nil
	}
	var r *Response
	if !ts.served || ts.info.FullState {
		r = s.fullState(v, ts, cur)
	} else {
		r = s.incremental(v, ts, cur)
	}
	old := ts.table
	ts.table = cur
	ts.force, ts.forceAll, ts.respond = nil, false, false
	if r == nil {
		return nil
	}
	r.TypeURL = ts.typeURL
	r.Nonce = s.nextNonce()
	ts.hold(cur)
	ts.nonce, ts.version = r.Nonce, r.Version
	s.owe(old, ts, r)
	return r
}

func emptyTableFor(v store.View, scope string, ts *sotwType) *store.Table {
	if !ts.served {
		return v.Table("", "") // always empty
	}
	return v.Table(scope, ts.typeURL)
}

// fullState computes an LDS/CDS/SRDS response: every subscribed resource, every
// time (S1), plus what make-before-break keeps (R15).
func (s *SotW) fullState(v store.View, ts *sotwType, cur *store.Table) *Response {
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
	changed := ts.respond || ts.forceAll || len(ts.force) > 0 || !sameRetained(ts.retained, retained)
	ts.retained = retained
	if !changed && !s.differs(ts, cur) {
		return nil
	}
	version := digestOf(entries).Version()
	if version == ts.version && !ts.respond && !ts.forceAll && len(ts.force) == 0 {
		return nil // R6: the same content again is not a change
	}
	return &Response{Version: version, Resources: entries, full: full, table: cur}
}

// incremental computes an RDS/EDS/... response: only what changed or must be
// re-sent (S2, R9, R16). Deleted resources are simply left out: in SotW that
// deletes nothing (S2), and the client drops them when nothing refers to them.
func (s *SotW) incremental(v store.View, ts *sotwType, cur *store.Table) *Response {
	var names []string
	if ts.forceAll {
		for _, e := range s.subscribed(v, ts, cur) {
			names = append(names, e.Name)
		}
	} else {
		names = s.changed(ts, cur)
		for n := range ts.force {
			if ts.sub.subscribes(n) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
	}
	var entries []*store.Entry
	for _, n := range names {
		if e := s.lookup(v, ts, cur, n); e != nil {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 && !ts.respond {
		return nil // R14: what is asked but missing is sent when it appears
	}
	return &Response{Version: digestOf(s.subscribed(v, ts, cur)).Version(), Resources: entries, table: cur}
}

// subscribed returns every existing resource the subscription covers, by name.
func (s *SotW) subscribed(v store.View, ts *sotwType, cur *store.Table) []*store.Entry {
	if ts.sub.wildcard {
		all := cur.Sorted()
		if len(ts.sub.names) == 0 || ts.typeURL != protocol.TypeEndpoint {
			return all
		}
		// A wildcard EDS subscription that also names assignments missing from the
		// store still gets their explicit empty assignments (P2).
		out := slices.Clone(all)
		for _, n := range ts.sub.sortedNames() {
			if cur.Get(n) == nil {
				if e := s.lookup(v, ts, cur, n); e != nil {
					out = append(out, e)
				}
			}
		}
		slices.SortFunc(out, byName)
		return out
	}
	out := make([]*store.Entry, 0, len(ts.sub.names))
	for _, n := range ts.sub.sortedNames() {
		if e := s.lookup(v, ts, cur, n); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// lookup finds a subscribed resource, including the explicit empty assignment of
// an EDS service that a cluster uses but the store has no endpoints for (P2).
func (s *SotW) lookup(v store.View, ts *sotwType, cur *store.Table, name string) *store.Entry {
	if e := cur.Get(name); e != nil {
		return e
	}
	if ts.typeURL == protocol.TypeEndpoint && usedByCluster(v, s.Scope, name) {
		return emptyAssignment(name)
	}
	return nil
}

// changed returns the subscribed names whose content differs between what the
// client holds and cur.
func (s *SotW) changed(ts *sotwType, cur *store.Table) []string {
	return changedNames(ts.table, cur, &ts.sub)
}

// differs reports whether any subscribed resource differs between ts.table and cur.
func (s *SotW) differs(ts *sotwType, cur *store.Table) bool {
	return ts.table == nil || len(changedNames(ts.table, cur, &ts.sub)) > 0
}

// changedNames returns the names the subscription covers whose version differs
// between old and cur (present in one only, or with other content), sorted.
func changedNames(old, cur *store.Table, sub *subscription) []string {
	if old == cur {
		return nil
	}
	var candidates []string
	if old == nil {
		for _, e := range cur.Sorted() {
			candidates = append(candidates, e.Name)
		}
	} else if names, ok := cur.ChangedSince(old.Revision()); ok && old.Revision() <= cur.Revision() {
		candidates = names
	} else {
		// Too far behind for the change log: compare contents.
		seen := make(map[string]struct{})
		for _, t := range []*store.Table{old, cur} {
			for e := range t.All() {
				if _, dup := seen[e.Name]; !dup {
					seen[e.Name] = struct{}{}
					candidates = append(candidates, e.Name)
				}
			}
		}
		slices.Sort(candidates)
	}
	var out []string
	for _, n := range candidates {
		if !sub.subscribes(n) {
			continue
		}
		var a, b *store.Entry
		if old != nil {
			a = old.Get(n)
		}
		b = cur.Get(n)
		if (a == nil) != (b == nil) || (a != nil && a.Version != b.Version) {
			out = append(out, n)
		}
	}
	return out
}

func byName(a, b *store.Entry) int {
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

func digestOf(entries []*store.Entry) protocol.Digest {
	var d protocol.Digest
	for _, e := range entries {
		d ^= e.Digest
	}
	return d
}

// maxHeld bounds the tables a type remembers as possibly held by the client.
const maxHeld = 8

// hold records that a response from table t was sent.
func (ts *sotwType) hold(t *store.Table) {
	if n := len(ts.held); n > 0 && ts.held[n-1] == t {
		return
	}
	if len(ts.held) == maxHeld {
		// Keep the oldest (the ACKed one) and the newest; forget the middle.
		copy(ts.held[1:], ts.held[2:])
		ts.held = ts.held[:maxHeld-1]
	}
	ts.held = append(ts.held, t)
}
