package machine

import (
	"maps"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// Delta is the protocol state of one incremental (delta) stream, ADS or per-type:
// a pure state machine like SotW, sharing its per-type state, ordering and
// lookups. Responses carry only what changed, each resource with its own version
// (its content hash, D8), and name what the client must delete (D7).
//
// A Delta is not safe for concurrent use.
type Delta struct {
	machine
	// pending maps the nonces of responses not yet answered to their type and
	// system version, so that an ACK or NACK of any of them is understood (D1).
	pending map[string]pendingResponse
}

type pendingResponse struct {
	typeURL string
	version string
	// rev is the store revision of the view the response was made from.
	rev uint64
}

// heldVersion is one entry of a reconnecting client's initial_resource_versions
// (D3), kept under the normalized name (X1).
type heldVersion struct {
	// version is the version the client holds.
	version string
	// spelling is the name as the client wrote it, when that is not its normal
	// form: what removed_resources must say (X4).
	spelling string
}

// maxPending bounds the unanswered responses a delta stream remembers.
const maxPending = 64

// NewDelta returns the state of a new delta stream.
func NewDelta(cfg Config) *Delta {
	return &Delta{machine: newMachine(cfg), pending: make(map[string]pendingResponse)}
}

// Receive applies a delta request; v is the store as it arrives (for the
// status). An error means the request is malformed: the stream ends with it
// (codes.InvalidArgument).
func (d *Delta) Receive(req *discoveryv3.DeltaDiscoveryRequest, at time.Time, v store.View) (Received, error) {
	rcv, err := d.receive(req, at)
	if err == nil {
		d.snapshot(v)
	}
	return rcv, err
}

func (d *Delta) receive(req *discoveryv3.DeltaDiscoveryRequest, at time.Time) (Received, error) {
	if err := d.admit(req.GetTypeUrl()); err != nil {
		return Received{}, err
	}
	z := sizesOf(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
	for n := range req.GetInitialResourceVersions() {
		z.add(len(n))
	}
	if err := d.limits.checkNames(req.GetTypeUrl(), z); err != nil {
		return Received{}, err
	}
	ts := d.typeState(req.GetTypeUrl())
	rcv := Received{TypeURL: ts.typeURL, Served: ts.served, Kind: KindSubscribe}

	// D1: ACK and NACK are the echoed nonce, with or without error_detail; the
	// system_version_info is informational only.
	if nonce := req.GetResponseNonce(); nonce != "" {
		if p, ok := d.pending[nonce]; ok && p.typeURL == ts.typeURL {
			delete(d.pending, nonce)
			if req.GetErrorDetail() != nil {
				// R4, P1: error_detail alone makes a NACK. R6: nothing is re-sent.
				ts.holds.rejected(&NACK{
					Nonce:           nonce,
					Version:         ts.holds.ackedVersion,
					RejectedVersion: p.version,
					Revision:        p.rev,
					Code:            req.GetErrorDetail().GetCode(),
					Message:         nackMessage(req.GetErrorDetail().GetMessage()),
					At:              at,
				})
				rcv.Kind, rcv.Version, rcv.NACK = KindNACK, ts.holds.ackedVersion, ts.holds.lastNACK
			} else {
				ts.holds.ackedVersion, ts.holds.nacked = p.version, false
				if nonce == ts.holds.nonce {
					ts.holds.accepted()
				}
				rcv.Kind, rcv.Version = KindACK, p.version
			}
		} else {
			rcv.Kind = KindStale // a nonce of another stream, or long forgotten
		}
	}

	// D2: subscriptions change whatever the nonce.
	first := !ts.sub.requested
	if first && len(req.GetInitialResourceVersions()) > 0 {
		// D3: a reconnecting client names what it holds; the first response sends
		// only what differs and removes what no longer exists.
		ts.owed.initial = make(map[string]heldVersion, len(req.GetInitialResourceVersions()))
		for n, v := range req.GetInitialResourceVersions() {
			key := protocol.NormalizeName(n) // X1
			h := heldVersion{version: v}
			if key != n {
				h.spelling = n // X4: removed_resources names it as the client does
			}
			ts.owed.initial[key] = h
		}
	}
	answer, wildcardOn := ts.sub.subscribe(req.GetResourceNamesSubscribe(), len(req.GetResourceNamesUnsubscribe()) > 0)
	if wildcardOn && ts.owed.initial == nil {
		ts.owed.all = true
	}
	for _, n := range answer {
		if _, held := ts.owed.initial[n]; held {
			continue // D3 decides for what the client says it holds
		}
		ts.owed.name(n) // D5
	}
	for _, n := range ts.sub.unsubscribe(req.GetResourceNamesUnsubscribe()) {
		ts.owed.name(n) // D6: the wildcard still covers it
	}
	if first && !ts.served {
		ts.owed.answer = true // an unknown type is answered as an empty set
	}
	return rcv, nil
}

// Responses returns what to send now that the store is at view v, in push order
// (R15), and records it as sent.
func (d *Delta) Responses(v store.View) []*Response {
	out := d.responses(v, d.respond)
	d.viewed = v.Revision() + 1
	d.snapshot(v)
	return out
}

func (d *Delta) respond(v store.View, ts *typeState) *Response {
	cur := emptyTableFor(v, d.Scope, ts)
	d.p2Recheck(v, ts, cur)
	if ts.current(cur) {
		ts.holds.stillRejected(v.Revision())
		return nil
	}
	old, oldRetained := ts.holds.table, ts.owed.retained
	updated, removed := d.diff(v, ts, cur)
	if d.warming(v, ts, updated) {
		ts.owed.retained = oldRetained
		return nil // R15: asked again after the next event, with nothing lost
	}
	respond := ts.owed.answer
	names := spell(ts, updated, removed) // X4, while the initial versions are known
	ts.holds.table = cur
	ts.owed.initial = nil
	ts.owed.paid()
	if len(updated) == 0 && len(removed) == 0 && !respond {
		ts.holds.stillRejected(v.Revision()) // nothing differs from the newest response
		return nil
	}
	entries := d.subscribed(v, ts, cur)
	for _, e := range ts.owed.retained {
		entries = append(entries, e)
	}
	r := &Response{
		TypeURL:   ts.typeURL,
		Version:   digestOf(entries).Version(),
		Nonce:     d.nextNonce(),
		Resources: updated,
		Removed:   removed,
		Spellings: names,
		Table:     cur,
	}
	ts.holds.sent(r, cur, v.Revision())
	if len(d.pending) >= maxPending {
		clear(d.pending) // a client this far behind on ACKs gets its NACKs unattributed
	}
	d.pending[r.Nonce] = pendingResponse{typeURL: ts.typeURL, version: r.Version, rev: v.Revision()}
	d.owe(old, ts, r)
	return r
}

// diff computes what a delta response of ts must carry: the resources whose
// content the client lacks, and the names it must delete.
func (d *Delta) diff(v store.View, ts *typeState, cur *store.Table) (updated []*store.Entry, removed []string) {
	retained := d.retain(v, ts, cur)
	for n := range ts.owed.retained {
		if _, still := retained[n]; !still && cur.Get(n) == nil {
			removed = append(removed, n) // R15: no longer in use, now it goes
		}
	}
	ts.owed.retained = retained

	var names []string
	switch {
	case ts.owed.initial != nil:
		// D3: compare what the client says it holds with what it should hold;
		// D9: and answer again what a cluster or listener may still wait for.
		owed := d.owedOnResume(v, ts)
		for _, e := range d.subscribed(v, ts, cur) {
			if ts.owed.initial[e.Name].version != e.Version || owed(e) {
				updated = append(updated, e)
			}
		}
		for n := range ts.owed.initial {
			if d.lookup(v, ts, cur, n) == nil && retained[n] == nil {
				removed = append(removed, n)
			}
		}
		for n := range ts.owed.names {
			g, glob := ts.sub.globs[n]
			if !glob {
				names = append(names, n) // D5, R16: answered even if held
				continue
			}
			for _, e := range cur.Sorted() {
				if g.Matches(e.Name) && ts.owed.initial[e.Name].version != e.Version {
					names = append(names, e.Name) // D3: a glob's members, only as they differ
				}
			}
		}
		if ts.owed.all {
			updated = d.subscribed(v, ts, cur) // R16 owed for every resource
		}
	case ts.owed.all:
		updated = d.subscribed(v, ts, cur)
		names = changedNames(ts.holds.table, cur, &ts.sub) // D7: and what was deleted
	default:
		names = changedNames(ts.holds.table, cur, &ts.sub)
		names = append(names, expandGlobs(ts, cur, slices.Collect(maps.Keys(ts.owed.names)))...)
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if !ts.sub.subscribes(n) && !ts.holds.mayHold(n) {
			continue
		}
		switch e := d.lookup(v, ts, cur, n); {
		case e != nil:
			if ts.sub.subscribes(n) {
				updated = append(updated, e)
			}
		case retained[n] != nil:
			// R15: make before break keeps it.
		default:
			// D7: a deletion, or a subscribed name that does not exist, is
			// announced in removed_resources and only there.
			removed = append(removed, n)
		}
	}
	slices.SortFunc(updated, byName)
	updated = slices.CompactFunc(updated, func(a, b *store.Entry) bool { return a.Name == b.Name })
	slices.Sort(removed)
	return updated, slices.Compact(removed)
}

// spell names what a delta response carries as the client spelled it (X4): xdstp
// names are normalized for lookup only (X1), and a client that compares names
// exactly would ignore a resource under another spelling. removed, which the
// response owns, is respelled in place; the names of updated, whose slice may be
// shared, are returned apart, nil when each is the store's name. A client that
// spells every name in normal form, the common case, costs nothing here.
func spell(ts *typeState, updated []*store.Entry, removed []string) (names []string) {
	if len(ts.sub.spelled) == 0 && ts.owed.initial == nil {
		return nil
	}
	for i, n := range removed {
		removed[i] = ts.removedName(n)
	}
	for i, e := range updated {
		// X2: a glob collection's members were not spelled by the client and
		// keep the store's name.
		sp := ts.sub.spelling(e.Name)
		if sp != e.Name && names == nil {
			names = make([]string, len(updated))
			for j, prev := range updated[:i] {
				names[j] = prev.Name
			}
		}
		if names != nil {
			names[i] = sp
		}
	}
	return names
}

// removedName returns the name removed_resources gives n: the spelling of the
// client's subscription to it, else that of its initial_resource_versions entry
// (D3, D7, X4), else n.
func (ts *typeState) removedName(n string) string {
	if sp, ok := ts.sub.spelled[n]; ok {
		return sp
	}
	if h := ts.owed.initial[n]; h.spelling != "" {
		return h.spelling
	}
	return n
}

// owedOnResume returns, for the first response of a resuming delta stream,
// whether an EDS (RDS) resource the client holds at its current version is
// still owed the answer R16 promises a cluster (listener) that uses it (D9). The
// client may have applied that cluster just before its old stream broke, with
// the answer lost in flight; it then waits (warming) for an answer that, by its
// versions alone, it does not lack. Versions are content hashes, so the same
// version may be a copy the client held before the cluster changed (endpoints
// that went and came back, an explicit empty assignment): nothing the client
// says tells the two apart, so every used one is sent again, at its version.
func (d *Delta) owedOnResume(v store.View, ts *typeState) func(*store.Entry) bool {
	var users string
	switch ts.typeURL {
	case protocol.TypeEndpoint:
		users = protocol.TypeCluster
	case protocol.TypeRoute:
		users = protocol.TypeListener
	default:
		return func(*store.Entry) bool { return false }
	}
	var used map[string]struct{}
	return func(e *store.Entry) bool {
		if used == nil {
			used = d.caches.usedBy(v.Table(d.Scope, users))
		}
		_, ok := used[e.Name]
		return ok
	}
}
