package machine

import (
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// retain returns the deleted resources make-before-break keeps sending (R15):
//
//   - clusters that the listeners and routes the client may hold from before the
//     store's current revision still route to; and, while a cluster those routes
//     name is not yet with the client, every cluster it held: the replacement is
//     made before the old one breaks;
//   - endpoints of the clusters the client may still hold, kept ones included.
//
// Make before break covers a transition, not a config (R18): once the client has
// answered the listeners and routes of the current revision, a deleted cluster
// goes, whatever those routes name. A config that deletes a cluster its routes
// still name is a dangling reference, not a transition; keeping the cluster
// would keep clients that had it sending to decommissioned endpoints for good.
func (s *machine) retain(v store.View, ts *typeState, cur *store.Table) map[string]*store.Entry {
	var inUse func(name string) bool
	switch ts.typeURL {
	case protocol.TypeCluster:
		var used map[string]struct{}
		var pending bool
		inUse = func(name string) bool {
			if used == nil {
				used = s.clustersInUse(v, true) // R18: only what a transition keeps
				pending = s.replacementPending(ts, cur, s.clustersInUse(v, false))
			}
			_, ok := used[name]
			return ok || pending
		}
	case protocol.TypeEndpoint:
		var used map[string]struct{}
		inUse = func(name string) bool {
			if used == nil {
				used = s.endpointsInUse()
			}
			_, ok := used[name]
			return ok
		}
	default:
		return nil
	}
	var kept map[string]*store.Entry
	consider := func(e *store.Entry) {
		if e == nil || cur.Get(e.Name) != nil || !ts.sub.subscribes(e.Name) || !inUse(e.Name) {
			return
		}
		if kept == nil {
			kept = make(map[string]*store.Entry)
		}
		kept[e.Name] = e
	}
	if ts.holds.table != nil && ts.holds.table != cur {
		for _, e := range s.caches.goneBetween(ts.holds.table, cur) {
			consider(e)
		}
	}
	for _, e := range ts.owed.retained {
		consider(e)
	}
	return kept
}

// replacementPending reports whether a cluster the client's routes use exists but
// is not yet with the client, endpoints included: a client that names its
// clusters (gRPC, P4) asks for the new one only after it has the route, and for
// its endpoints only after it has the cluster; it keeps using the old cluster
// until then, so the old one must stay.
//
// It waits only until the client answers the responses that could make it ask
// (see answered, R19): a client that accepted or rejected them without asking
// holds nothing back.
func (s *machine) replacementPending(cds *typeState, cur *store.Table, used map[string]struct{}) bool {
	eds := s.state(protocol.TypeEndpoint)
	routesAnswered := s.state(protocol.TypeRoute).answered() && s.state(protocol.TypeListener).answered() &&
		s.state(protocol.TypeVirtualHost).answered()
	for c := range used {
		e := cur.Get(c)
		if e == nil {
			continue
		}
		if !cds.sub.subscribes(c) {
			if !routesAnswered {
				return true // it may ask for the cluster its new route names
			}
			continue
		}
		if eds == nil || !eds.sub.requested {
			continue // its endpoints do not come over this stream
		}
		// The client asks for the endpoints once it has the cluster: not before
		// this response if it brings the cluster, and at the latest as it
		// answers it (Envoy subscribes a new cluster's endpoints before it ACKs
		// the clusters).
		mayAsk := !cds.sent(c) || !cds.answered()
		for _, svc := range e.Refs.Endpoints {
			// Subscribed but not yet sent: sent right after this response, so the
			// old cluster goes with the next one.
			if !eds.sent(svc) && (eds.sub.subscribes(svc) || mayAsk) {
				return true
			}
		}
	}
	return false
}

// endpointsInUse returns the EDS service names of the clusters the client may
// hold: those of the CDS tables it ACKed last or was sent since, and those kept
// by make before break.
func (s *machine) endpointsInUse() map[string]struct{} {
	used := make(map[string]struct{})
	cds := s.state(protocol.TypeCluster)
	if cds == nil {
		return used
	}
	add := func(e *store.Entry) {
		for _, n := range e.Refs.Endpoints {
			used[n] = struct{}{}
		}
	}
	for _, t := range cds.holds.held {
		for e := range t.All() {
			if cds.sub.subscribes(e.Name) {
				add(e)
			}
		}
	}
	for _, e := range cds.owed.retained {
		add(e)
	}
	return used
}

// warming reports whether a route update must wait (R15, make before break): it
// routes to a cluster the client has been sent but whose endpoints it has not
// asked for yet, so the cluster is still warming and traffic sent to it now would
// fail. Only a client that takes every cluster (Envoy's wildcard CDS) and its
// endpoints over this stream is held back: one that names its clusters asks for
// them after the route (P4). R19: the wait ends, at the latest, when the client
// answers its newest clusters: Envoy subscribes the endpoints of a new cluster
// before it ACKs the clusters, so a cluster whose endpoints are still not asked
// for then gets them elsewhere (an eds_config that is not this stream) and the
// route must not wait for a request that will not come.
func (s *machine) warming(v store.View, ts *typeState, resources []*store.Entry) bool {
	if ts.typeURL != protocol.TypeRoute {
		return false
	}
	cds, eds := s.state(protocol.TypeCluster), s.state(protocol.TypeEndpoint)
	if cds == nil || !cds.sub.wildcard || cds.holds.table == nil || eds == nil || !eds.sub.requested || cds.answered() {
		return false
	}
	clusters := v.Table(s.Scope, protocol.TypeCluster)
	for _, r := range resources {
		for _, c := range r.Refs.Clusters {
			ce := clusters.Get(c)
			if ce == nil || !cds.sent(c) {
				continue // not a cluster the client has been sent: nothing to wait for
			}
			for _, svc := range ce.Refs.Endpoints {
				if !eds.sub.subscribes(svc) {
					return true
				}
			}
		}
	}
	return false
}

// clustersInUse returns the clusters named by the listeners and routes the client
// may hold: those it ACKed last and those sent since. With transition, a type
// whose client has answered a response computed at the store's current table
// counts for nothing: what it holds is the current revision, whatever it names;
// make before break keeps only what a transition still uses (R15, R18).
func (s *machine) clustersInUse(v store.View, transition bool) map[string]struct{} {
	used := make(map[string]struct{})
	for _, typeURL := range []string{protocol.TypeListener, protocol.TypeRoute, protocol.TypeVirtualHost} {
		ts := s.state(typeURL)
		if ts == nil {
			continue
		}
		if transition && ts.holds.table == emptyTableFor(v, s.Scope, ts) && ts.answered() {
			continue
		}
		for _, t := range ts.holds.held {
			for e := range t.All() {
				if !ts.sub.subscribes(e.Name) {
					continue
				}
				for _, c := range e.Refs.Clusters {
					used[c] = struct{}{}
				}
			}
		}
	}
	return used
}

func sameRetained(a, b map[string]*store.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for n, e := range a {
		if b[n] != e {
			return false
		}
	}
	return true
}
