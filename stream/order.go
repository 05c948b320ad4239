package stream

import (
	"slices"
	"sync"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// retain returns the clusters make-before-break keeps sending although the store
// deleted them (R15): those the listeners and routes the client holds, or was last
// sent, still route to. Once those are updated and ACKed, the next CDS response
// drops them.
func (s *machine) retain(v store.View, ts *typeState, cur *store.Table) map[string]*store.Entry {
	if ts.typeURL != protocol.TypeCluster {
		return nil
	}
	var gone []*store.Entry
	consider := func(e *store.Entry) {
		if e != nil && cur.Get(e.Name) == nil && ts.sub.subscribes(e.Name) {
			gone = append(gone, e)
		}
	}
	if ts.table != nil && ts.table != cur {
		if names, ok := cur.ChangedSince(ts.table.Revision()); ok {
			for _, n := range names {
				consider(ts.table.Get(n))
			}
		} else {
			for e := range ts.table.All() {
				consider(e)
			}
		}
	}
	for _, e := range ts.retained {
		consider(e)
	}
	if len(gone) == 0 {
		return nil
	}
	used := s.clustersInUse()
	var kept map[string]*store.Entry
	for _, e := range gone {
		if _, ok := used[e.Name]; ok {
			if kept == nil {
				kept = make(map[string]*store.Entry)
			}
			kept[e.Name] = e
		}
	}
	return kept
}

// clustersInUse returns the clusters named by the listeners and routes the client
// may hold: those it ACKed last and those sent since.
func (s *machine) clustersInUse() map[string]struct{} {
	used := make(map[string]struct{})
	for _, typeURL := range []string{protocol.TypeListener, protocol.TypeRoute} {
		ts := s.types[typeURL]
		if ts == nil {
			continue
		}
		for _, t := range ts.held {
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
				if dts.force == nil {
					dts.force = make(map[string]struct{})
				}
			}
			dts.force[n] = struct{}{}
		}
	}
}

// usedByCluster reports whether a cluster of the scope gets its endpoints from
// the EDS service name.
func usedByCluster(v store.View, scope, service string) bool {
	cds := v.Table(scope, protocol.TypeCluster)
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

var emptyAssignments sync.Map // service name → *store.Entry

// emptyAssignment returns the explicit empty ClusterLoadAssignment of a service
// (P2): a cluster without endpoints gets this, not silence, so it leaves warming.
func emptyAssignment(service string) *store.Entry {
	if e, ok := emptyAssignments.Load(service); ok {
		return e.(*store.Entry)
	}
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
	actual, _ := emptyAssignments.LoadOrStore(service, e)
	return actual.(*store.Entry)
}
