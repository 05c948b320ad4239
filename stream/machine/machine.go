package machine

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// machine is what the SotW and delta state machines share: the stream's node and
// scope, its nonce counter, and the state of each type.
type machine struct {
	// Scope is the scope whose resources the stream is served.
	Scope string
	// Node is the node of the stream's first request (R2).
	Node *corev3.Node

	limits Limits
	// caches are shared with the other machines of the server (Config.Caches).
	caches *Caches
	// snap is the newest status snapshot handed out (Status).
	snap *Status
	// viewed is 1 + the store revision of the view of the newest Responses,
	// 0 before any; ackedRev is the newest such revision at which the client
	// had ACKed everything it was sent and was owed nothing (see Status).
	viewed, ackedRev uint64
	// nonces counts the responses made on the stream; each nonce is its count (R1).
	nonces uint64
	// types are the stream's type states in push order (R15). A stream asks for
	// a few types: a sorted slice costs less than a map and needs no sort per push.
	types []*typeState
}

// Config is what a new state machine serves, and to whom.
type Config struct {
	// Scope is the scope whose resources the stream is served.
	Scope string
	// Node is the node of the stream's first request (R2); the machine keeps it
	// as it is.
	Node *corev3.Node
	// Limits bound what the client may ask.
	Limits Limits
	// Caches are shared with the other machines of the same server; nil gives
	// the machine caches of its own.
	Caches *Caches
}

func newMachine(cfg Config) machine {
	return machine{Scope: cfg.Scope, Node: cfg.Node, limits: cfg.Limits, caches: orNew(cfg.Caches)}
}

// Machine is what the loop around a stream needs of its state machine, SotW
// (Req is *DiscoveryRequest) or delta (*DeltaDiscoveryRequest): take a request,
// say what to send, and show its state.
type Machine[Req any] interface {
	// Receive applies a request; v is the store as it arrives. An error means
	// the request is malformed: the stream ends with it (codes.InvalidArgument).
	Receive(req Req, at time.Time, v store.View) (Received, error)
	// Responses returns what to send now that the store is at view v, in push
	// order (R15), and records it as sent; nothing when the client is current (R6).
	Responses(v store.View) []*Response
	// Status returns the snapshot of the newest step; nil before any.
	Status() *Status
}

var (
	_ Machine[*discoveryv3.DiscoveryRequest]      = (*SotW)(nil)
	_ Machine[*discoveryv3.DeltaDiscoveryRequest] = (*Delta)(nil)
)

// Status returns the immutable snapshot of the machine after its newest step
// (Receive or Responses), nil before its first. It is safe to read from any
// goroutine once handed over.
func (m *machine) Status() *Status { return m.snap }

// Limits bound what one client may ask of the server. A request over a limit
// ends its stream with codes.InvalidArgument and a message naming the limit.
type Limits struct {
	// MaxNames is the most resource names one request may carry; 0 means 100,000.
	MaxNames int
	// MaxTypes is the most type URLs one stream may request; 0 means 64. Each
	// costs state and a watch, and Envoy uses about ten.
	MaxTypes int
	// MaxNameBytes is the longest resource name a request may carry, in bytes;
	// 0 means DefaultMaxNameBytes. Names are kept for as long as they are
	// subscribed to.
	MaxNameBytes int
	// MaxRequestNameBytes bounds the bytes of every resource name of one request
	// together; 0 means DefaultMaxRequestNameBytes.
	MaxRequestNameBytes int
	// MaxNodeBytes is the largest node (its encoded size, proto.Size) the first
	// request of a stream may carry; 0 means DefaultMaxNodeBytes. A stream keeps
	// the parts of its node that identify it (see StreamInfo.Node) for its life.
	MaxNodeBytes int
}

// The defaults of Limits.
const (
	// DefaultMaxNameBytes leaves room for long xdstp names with context
	// parameters; Envoy's own names are far shorter.
	DefaultMaxNameBytes = 4 << 10
	// DefaultMaxRequestNameBytes is about 25,000 names of 80 bytes: an Envoy
	// subscribed by name to the endpoints of every cluster of a large mesh.
	DefaultMaxRequestNameBytes = 2 << 20
	// DefaultMaxNodeBytes is a few times what an Envoy sends: its metadata and
	// the list of every extension it was built with.
	DefaultMaxNodeBytes = 256 << 10
)

func (l Limits) maxTypes() int {
	if l.MaxTypes > 0 {
		return l.MaxTypes
	}
	return 64
}

func (l Limits) maxNames() int {
	if l.MaxNames > 0 {
		return l.MaxNames
	}
	return 100_000
}

func (l Limits) maxNameBytes() int {
	if l.MaxNameBytes > 0 {
		return l.MaxNameBytes
	}
	return DefaultMaxNameBytes
}

func (l Limits) maxRequestNameBytes() int {
	if l.MaxRequestNameBytes > 0 {
		return l.MaxRequestNameBytes
	}
	return DefaultMaxRequestNameBytes
}

func (l Limits) maxNodeBytes() int {
	if l.MaxNodeBytes > 0 {
		return l.MaxNodeBytes
	}
	return DefaultMaxNodeBytes
}

// CheckNode returns what is wrong with the node that what (the first request
// of a stream, a fetch request) carries: none at all (R2), or one over
// MaxNodeBytes. nil means it is fine.
func (l Limits) CheckNode(node *corev3.Node, what string) error {
	if node == nil {
		return fmt.Errorf("%s must carry a node (R2)", what)
	}
	if n, limit := proto.Size(node), l.maxNodeBytes(); n > limit {
		return fmt.Errorf("the node of %s is %d bytes, more than the limit of %d bytes per node", what, n, limit)
	}
	return nil
}

// nameSizes measures the resource names of a request.
type nameSizes struct {
	// count is the number of names, longest the bytes of the longest, total the
	// bytes of them all.
	count, longest, total int
}

func (z *nameSizes) add(n int) {
	z.count++
	z.total += n
	z.longest = max(z.longest, n)
}

func sizesOf(names ...[]string) nameSizes {
	var z nameSizes
	for _, l := range names {
		for _, n := range l {
			z.add(len(n))
		}
	}
	return z
}

// checkNames returns what is wrong with a request for typeURL carrying names of
// sizes z, or nil if they are within the limits.
func (l Limits) checkNames(typeURL string, z nameSizes) error {
	switch {
	case z.count > l.maxNames():
		return fmt.Errorf("request for %s names %d resources, more than the limit of %d",
			protocol.Short(typeURL), z.count, l.maxNames())
	case z.longest > l.maxNameBytes():
		return fmt.Errorf("request for %s names a resource of %d bytes, more than the limit of %d bytes per name",
			protocol.Short(typeURL), z.longest, l.maxNameBytes())
	case z.total > l.maxRequestNameBytes():
		return fmt.Errorf("request for %s names resources of %d bytes in all, more than the limit of %d bytes per request",
			protocol.Short(typeURL), z.total, l.maxRequestNameBytes())
	}
	return nil
}

// MaxNACKMessageBytes bounds what a stream keeps of a NACK's error_detail
// message: the client chooses its length (up to a whole request), and a
// stream keeps the newest NACK of each type for status pages, CSDS, rollouts
// and logs. A longer message is cut at a character boundary and marked
// "… (N bytes cut)".
const MaxNACKMessageBytes = 4 << 10

// nackMessage returns what a stream keeps of a NACK's message.
func nackMessage(s string) string { return Cut(s, MaxNACKMessageBytes) }

// Cut returns s cut to at most n bytes at a character boundary, marked
// "… (N bytes cut)" when it was cut: how leanxds keeps bounded what a client
// wrote (a NACK's detail, here and in rollout states).
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes cut)", len(s)-cut)
}

// NACK is a client's rejection of a response.
type NACK struct {
	// Nonce is the nonce of the rejected response.
	Nonce string
	// Version is the version the client still holds, the last it accepted (R5).
	Version string
	// RejectedVersion is the version_info of the rejected response.
	RejectedVersion string
	// Revision is the store revision of the view the rejected response was
	// made from; when a newer view read since sends nothing new of the type
	// (its content is the one rejected), that view's (R26).
	Revision uint64
	// Code and Message are the client's error_detail (Message cut to
	// MaxNACKMessageBytes). Only its presence makes a NACK (P1): the code
	// differs from client to client.
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

// admit checks a request's type against the stream's limits.
func (s *machine) admit(typeURL string) error {
	if typeURL == "" {
		return fmt.Errorf("request without type_url")
	}
	if ts := s.state(typeURL); ts != nil && ts.sub.requested {
		return nil
	}
	// Only the types the client asked for count: the state of a type the
	// server owes answers in (R16: the EDS of a new cluster) exists before
	// the client asks, and the types the server serves bound those.
	n := 0
	for _, ts := range s.types {
		if ts.sub.requested {
			n++
		}
	}
	if n >= s.limits.maxTypes() {
		return fmt.Errorf("request for type URL number %d (%s), more than the limit of %d", n+1, typeURL, s.limits.maxTypes())
	}
	return nil
}

// state returns the state of typeURL, nil if the stream has none.
func (s *machine) state(typeURL string) *typeState {
	for _, ts := range s.types {
		if ts.typeURL == typeURL {
			return ts
		}
	}
	return nil
}

// typeState returns the state of typeURL, adding it in push order if new.
func (s *machine) typeState(typeURL string) *typeState {
	if ts := s.state(typeURL); ts != nil {
		return ts
	}
	info, served := protocol.Lookup(typeURL)
	ts := &typeState{typeURL: typeURL, served: served, fullState: info.FullState, sub: subscription{sets: s.caches.sets}}
	i, _ := slices.BinarySearchFunc(s.types, typeURL, func(t *typeState, u string) int { return protocol.PushOrder(t.typeURL, u) })
	s.types = slices.Insert(s.types, i, ts)
	return ts
}

func (s *machine) nextNonce() string {
	s.nonces++
	return protocol.FormatNonce(s.nonces)
}

func emptyTableFor(v store.View, scope string, ts *typeState) *store.Table {
	if !ts.served {
		return v.Table("", "") // always empty
	}
	return v.Table(scope, ts.typeURL)
}

// subscribed returns every existing resource the subscription covers, by name.
func (s *machine) subscribed(v store.View, ts *typeState, cur *store.Table) []*store.Entry {
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
	if len(ts.sub.globs) > 0 {
		// X2: a glob collection subscribes to every resource under its prefix.
		for _, e := range cur.Sorted() {
			if _, named := ts.sub.names[e.Name]; !named && ts.sub.subscribes(e.Name) {
				out = append(out, e)
			}
		}
		slices.SortFunc(out, byName)
	}
	return out
}

// expandGlobs replaces each glob collection among names by the names of the
// resources it holds in cur (X2): a glob is answered with its members, one by
// one, never by its own name.
func expandGlobs(ts *typeState, cur *store.Table, names []string) []string {
	if len(ts.sub.globs) == 0 {
		return names
	}
	out := names[:0:0]
	for _, n := range names {
		g, ok := ts.sub.globs[n]
		if !ok {
			out = append(out, n)
			continue
		}
		for _, e := range cur.Sorted() {
			if g.Matches(e.Name) {
				out = append(out, e.Name)
			}
		}
	}
	return out
}

// lookup finds a subscribed resource, including the explicit empty assignment of
// an EDS service that a cluster uses but the store has no endpoints for (P2).
func (s *machine) lookup(v store.View, ts *typeState, cur *store.Table, name string) *store.Entry {
	if e := cur.Get(name); e != nil {
		return e
	}
	if ts.typeURL == protocol.TypeEndpoint && usedByCluster(v, s.Scope, name) {
		return s.caches.emptyAssignment(name)
	}
	return nil
}

// changed returns the subscribed names whose content differs between what the
// client holds and cur.
func (s *machine) changed(ts *typeState, cur *store.Table) []string {
	return changedNames(ts.holds.table, cur, &ts.sub)
}

// differs reports whether any subscribed resource differs between ts.holds.table and cur.
func (s *machine) differs(ts *typeState, cur *store.Table) bool {
	return ts.holds.table == nil || s.caches.differs(ts.holds.table, cur, &ts.sub)
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
	} else if names, ok := old.ChangedSince(cur.Revision()); ok && cur.Revision() < old.Revision() {
		// Served an earlier view (a rollout's base, R24): what changed
		// since cur is what differs.
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
