package machine

import (
	"maps"
	"runtime"
	"slices"
	"weak"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// owed is what a client is owed of one type beyond what changed since its
// last response, and why. A response pays what it carries (paid); what make
// before break keeps (retained) lasts as long as the transition.
type owed struct {
	// all: every subscribed resource: a wildcard turned on (R9, R10), every
	// name new (R9), every dependent of a change to every cluster or listener
	// (R16), or a version this server cannot vouch for (S3, P3).
	all bool
	// names are resources the next response must carry even if unchanged: new
	// subscriptions (R9, D5), what a wildcard still covers after an
	// unsubscription (D6), the RDS/EDS of new or updated listeners and
	// clusters (R16), and explicit empty assignments whose cluster appeared
	// (P2). newNames copies the map before it adds to it, so that the set a
	// resume restores (S3) stays as it was.
	names map[string]struct{}
	// answer: the next computation answers even if nothing is to be sent: the
	// first request of a full-state or unknown type (S1), a fetch.
	answer bool
	// initial is what a reconnecting delta client said it holds
	// (initial_resource_versions, D3), until the first response answers it
	// (and, D9, what a cluster or listener may still wait for).
	initial map[string]heldVersion
	// retained are deleted resources still sent because what the client holds
	// still refers to them: make before break (R15), for as long as the
	// transition lasts (R18, R19). A map is replaced, never modified.
	retained map[string]*store.Entry
	// cdsSeen is, for EDS, the cluster table the last computation saw: a cluster
	// that appears later still owes its explicit empty assignment (P2).
	cdsSeen *store.Table
}

// nothing reports whether nothing is owed beyond what changed.
func (o *owed) nothing() bool {
	return o.initial == nil && !o.answer && !o.all && len(o.names) == 0 && len(o.retained) == 0
}

// pending reports whether the next computation owes an answer beyond what
// changed and what make before break keeps.
func (o *owed) pending() bool {
	return o.answer || o.all || len(o.names) > 0
}

// owes reports whether name is still owed: named, part of everything owed, or
// of a resume not yet answered.
func (o *owed) owes(name string) bool {
	_, named := o.names[name]
	return named || o.all || o.initial != nil
}

// name owes name.
func (o *owed) name(name string) {
	if o.names == nil {
		o.names = make(map[string]struct{})
	}
	o.names[name] = struct{}{}
}

// newNames owes the names of a request that are new to the subscription (R9),
// on a copy of names: the set before stays as it was (see resume).
func (o *owed) newNames(added []string) {
	o.names = maps.Clone(o.names)
	for _, n := range added {
		o.name(n)
	}
}

// paid records that a response was computed: what it had to carry is no
// longer owed. Make before break (retained) and a resume (initial) are settled
// by the computation itself.
func (o *owed) paid() {
	o.names, o.all, o.answer = nil, false, false
}

// resume records that a reconnecting client holds exactly the current content
// (S3, S6): nothing is owed to it but what was owed before its request
// (before, R16), which the request did not pay.
func (o *owed) resume(before map[string]struct{}) {
	o.names, o.all, o.answer = before, false, false
}

// owe marks, after a response of ts, the resources that must be answered next
// even if unchanged (R16): the EDS of every new or updated cluster and the RDS of
// every new or updated listener, so that they leave warming. A changed resource
// is one whose version differs from what the client held before this response.
func (s *machine) owe(old *store.Table, ts *typeState, r *Response) {
	var dep string
	switch ts.typeURL {
	case protocol.TypeCluster:
		dep = protocol.TypeEndpoint
	case protocol.TypeListener:
		dep = protocol.TypeRoute
	default:
		return
	}
	var dts *typeState
	if len(r.Resources) > manyForced && s.caches.allChanged(old, r) {
		// Every resource sent is new or updated (a change that touched them all):
		// owing all their dependents is, for the client, owing its whole
		// subscription of the dependent type. Say so once instead of naming each.
		s.typeState(dep).owed.all = true
		return
	}
	for _, e := range r.Resources {
		var prev *store.Entry
		if old != nil {
			prev = old.Get(e.Name)
		}
		if prev != nil && prev.Version == e.Version {
			continue
		}
		refs := e.Refs.Endpoints
		if dep == protocol.TypeRoute {
			refs = e.Refs.Routes
		}
		for _, n := range refs {
			if dts == nil {
				dts = s.typeState(dep)
			}
			dts.owed.name(n)
		}
	}
}

// allChanged reports whether every entry differs from its version in old.
func allChanged(old *store.Table, entries []*store.Entry) bool {
	if old == nil {
		return true
	}
	for _, e := range entries {
		if prev := old.Get(e.Name); prev != nil && prev.Version == e.Version {
			return false
		}
	}
	return true
}

// p2Recheck owes the explicit empty assignment of every subscribed EDS name whose
// cluster appeared since the last computation (P2): the EDS table did not
// change, so nothing else would answer it.
func (s *machine) p2Recheck(v store.View, ts *typeState, cur *store.Table) {
	if ts.typeURL != protocol.TypeEndpoint {
		return
	}
	cds := v.Table(s.Scope, protocol.TypeCluster)
	old := ts.owed.cdsSeen
	if cds == old {
		return
	}
	ts.owed.cdsSeen = cds
	if old == nil || ts.holds.table == nil {
		return // the first answer covers every name anyway
	}
	for _, n := range ts.sub.sortedNames() {
		if cur.Get(n) == nil && usedByClusterIn(cds, n) && !usedByClusterIn(old, n) {
			ts.owed.name(n)
		}
	}
}

// usedByCluster reports whether a cluster of the scope gets its endpoints from
// the EDS service name.
func usedByCluster(v store.View, scope, service string) bool {
	return usedByClusterIn(v.Table(scope, protocol.TypeCluster), service)
}

func usedByClusterIn(cds *store.Table, service string) bool {
	if c := cds.Get(service); c != nil && slices.Contains(c.Refs.Endpoints, service) {
		return true
	}
	for c := range cds.All() {
		if slices.Contains(c.Refs.Endpoints, service) {
			return true
		}
	}
	return false
}

// emptyAssignment returns the explicit empty ClusterLoadAssignment of a service
// (P2): a cluster without endpoints gets this, not silence, so it leaves warming.
func (c *Caches) emptyAssignment(service string) *store.Entry {
	a := &c.empty
	a.mu.Lock()
	if e := a.m[service].Value(); e != nil {
		a.mu.Unlock()
		return e
	}
	a.mu.Unlock()
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(&endpointv3.ClusterLoadAssignment{ClusterName: service})
	if err != nil {
		return nil // cannot happen for a message this simple
	}
	version := protocol.ContentVersion(body)
	e := &store.Entry{
		Name:    service,
		TypeURL: protocol.TypeEndpoint,
		Body:    body,
		Version: version,
		Digest:  protocol.EntryDigest(service, version),
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if held := a.m[service].Value(); held != nil {
		return held // made meanwhile for another stream
	}
	if _, had := a.m[service]; !had && len(a.m) >= maxEmptyAssignments {
		return e // full: this one is not shared
	}
	a.m[service] = weak.Make(e)
	runtime.AddCleanup(e, a.forget, service)
	return e
}

// forget drops the assignment of service once it has been collected.
func (a *emptyAssignments) forget(service string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.m[service]; ok && w.Value() == nil {
		delete(a.m, service)
	}
}

// size reports how many assignments are shared, for tests.
func (a *emptyAssignments) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}
