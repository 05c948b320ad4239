package admin

import (
	"slices"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// served is one resource a stream's client subscribes to, as the server sees it:
// what CSDS, /debug/config and `leanxds dump` report.
type served struct {
	name string
	// entry is the resource the client is served; nil when it does not exist.
	entry *store.Entry
	// client is the resource's status from the client's side (ACKED, NACKED,
	// REQUESTED, DOES_NOT_EXIST); config is the server's (SYNCED, STALE, ...).
	client adminv3.ClientResourceStatus
	config statusv3.ConfigStatus
}

// typeStatus is the status every resource of a type shares: in SotW a client
// accepts or rejects a response whole.
func typeStatus(ts stream.TypeStatus) (adminv3.ClientResourceStatus, statusv3.ConfigStatus) {
	switch {
	case ts.VersionSent == "":
		return adminv3.ClientResourceStatus_REQUESTED, statusv3.ConfigStatus_NOT_SENT
	case ts.LastNACK != nil && ts.LastNACK.Nonce == ts.NonceSent:
		// The newest response was rejected; R6: it is not re-sent until the
		// config changes, so the client stays at VersionACKed.
		return adminv3.ClientResourceStatus_NACKED, statusv3.ConfigStatus_ERROR
	case ts.VersionACKed == ts.VersionSent:
		return adminv3.ClientResourceStatus_ACKED, statusv3.ConfigStatus_SYNCED
	}
	// Sent, not answered yet.
	return adminv3.ClientResourceStatus_REQUESTED, statusv3.ConfigStatus_STALE
}

// servedResources lists, sorted by name, the resources a stream subscribes to
// in one type: every resource of its scope for a wildcard, plus each name it
// asked for, existing or not.
func servedResources(v store.View, scope string, ts stream.TypeStatus) []served {
	table := v.Table(scope, ts.TypeURL)
	client, config := typeStatus(ts)
	missing := make(map[string]bool, len(ts.Missing))
	for _, n := range ts.Missing {
		missing[n] = true
	}
	seen := make(map[string]bool)
	var out []served
	add := func(name string, e *store.Entry) {
		if seen[name] {
			return
		}
		seen[name] = true
		r := served{name: name, entry: e, client: client, config: config}
		switch {
		case missing[name]:
			r.entry, r.client = nil, adminv3.ClientResourceStatus_DOES_NOT_EXIST
		case e == nil && ts.TypeURL == protocol.TypeEndpoint:
			// P2: a cluster's endpoints the store lacks are served as an explicit
			// empty assignment.
			r.entry = emptyAssignment(name)
		}
		out = append(out, r)
	}
	for _, e := range ts.Retained {
		add(e.Name, e) // R15, R18: deleted, and still with the client
	}
	if ts.Wildcard {
		for _, e := range table.Sorted() {
			add(e.Name, e)
		}
	}
	for _, n := range ts.Names {
		if g, ok := protocol.ParseGlob(n); ok {
			// X2: a glob collection stands for its members.
			for _, e := range table.Sorted() {
				if g.Matches(e.Name) {
					add(e.Name, e)
				}
			}
			continue
		}
		e := table.Get(n)
		if e == nil {
			e = table.Get(protocol.NormalizeName(n)) // X1
		}
		add(n, e)
	}
	slices.SortFunc(out, func(a, b served) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}

// emptyAssignment is the explicit empty ClusterLoadAssignment of an EDS name a
// cluster uses and the store has no endpoints for (P2).
func emptyAssignment(name string) *store.Entry {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&endpointv3.ClusterLoadAssignment{ClusterName: name})
	if err != nil {
		return nil
	}
	return &store.Entry{Name: name, TypeURL: protocol.TypeEndpoint, Body: b}
}
