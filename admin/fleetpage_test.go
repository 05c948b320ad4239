package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// fakeFleet is a Fleet of a list of nodes, in cursor order.
type fakeFleet struct {
	replicas []FleetReplica
	nodes    []FleetEntry
	err      error
}

func (f *fakeFleet) FleetNodes(_ context.Context, after string, limit int) (FleetList, error) {
	if f.err != nil {
		return FleetList{}, f.err
	}
	l := FleetList{Revision: 7, Replicas: f.replicas, Total: len(f.nodes)}
	i, _ := slices.BinarySearchFunc(f.nodes, after, func(e FleetEntry, after string) int {
		if e.Cursor <= after {
			return -1
		}
		return 1
	})
	end := min(i+limit, len(f.nodes))
	l.Nodes, l.More = f.nodes[i:end], end < len(f.nodes)
	return l, nil
}

// syncedFleet starts a test server with n synced Envoys (CDS and LDS
// wildcard, EDS and RDS by name) and returns it with their fleet status as
// replica r1 publishes it.
func syncedFleet(t *testing.T, n int) (*testServer, map[string]*FleetNode) {
	ts := startTestServer(t)
	w := xdstest.Workload{Clusters: 5, EndpointsPerCluster: 2, Listeners: 2, Routes: 2, VirtualHostsPerRoute: 2}
	commitWorkload(t, ts.st, w)
	startFleet(t, ts.cc, n, w)
	var nodes map[string]*FleetNode
	for range 500 { // the ACKs are on their way: at most 5s
		nodes = FleetNodes("r1", ts.st.View(), ts.xds.Streams())
		synced := len(nodes) == n
		for _, nd := range nodes {
			for _, ty := range nd.Types {
				synced = synced && ty.ACKed != "" && ty.ACKed == ty.Sent
			}
		}
		if synced {
			return ts, nodes
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the fleet did not sync: %+v", nodes)
	return nil, nil
}

// A replica publishes, per node, what it ACKed and was sent of each type, with
// the content version of the type in its scope; a node synced with this
// replica's content is current, and stops being so when the content changes
// until it ACKs the new versions.
func TestFleetNodesAndCurrent(t *testing.T) {
	ts, nodes := syncedFleet(t, 3)
	require.Len(t, nodes, 3)
	n := nodes["envoy-0001"]
	require.Equal(t, "default", n.Scope)
	require.Equal(t, "r1", n.Replica)
	require.ElementsMatch(t, []string{"CDS", "EDS", "LDS", "RDS"}, slices.Collect(mapsKeys(n.Types)))
	v := ts.st.View()
	cds := n.Types["CDS"]
	require.True(t, cds.Wildcard)
	require.Equal(t, v.Table("default", protocol.TypeCluster).Digest().Version(), cds.ACKed, "a wildcard CDS is sent the whole table")
	require.False(t, n.Types["EDS"].Wildcard)
	require.Equal(t, v.Table("default", protocol.TypeEndpoint).Digest().Version(), n.Types["EDS"].Content)

	cur, all := currentTypes(v, n)
	require.True(t, all, "%v", cur)

	// Another content: the node's published status is no longer current for
	// the types that changed, seen by a replica that holds the new content.
	_, err := ts.st.Commit(store.Set("default", xdstest.Cluster("extra")))
	require.NoError(t, err)
	cur, all = currentTypes(ts.st.View(), n)
	require.False(t, all)
	require.Equal(t, map[string]bool{"CDS": false, "EDS": true, "LDS": true, "RDS": true}, cur)

	// A named subscription is current only if it ACKed what it was sent.
	nacked := *n
	nacked.Types = map[string]FleetType{"EDS": {ACKed: "a", Sent: "b", Content: n.Types["EDS"].Content,
		NACK: &FleetNACK{Version: "b", Nonce: "3", Error: "bad", At: time.Now()}}}
	cur, all = currentTypes(ts.st.View(), &nacked)
	require.False(t, all)
	require.False(t, cur["EDS"])
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// /debug/fleet lists every node of the fleet with its replica and whether it
// is current for this replica, a page at a time within --admin-max-page and
// --admin-max-bytes, and says when the fleet cannot be read.
func TestDebugFleetPage(t *testing.T) {
	ts, nodes := syncedFleet(t, 3)
	fleet := &fakeFleet{replicas: []FleetReplica{{ID: "r1", Addr: "10.0.0.1:18000"}, {ID: "r2", Addr: "10.0.0.2:18000"}}}
	for _, id := range nodesSorted(nodes) {
		fleet.nodes = append(fleet.nodes, FleetEntry{Cursor: "r1/" + id, Node: *nodes[id]})
	}
	stale := *nodes["envoy-0000"]
	stale.Replica, stale.Types = "r2", map[string]FleetType{"CDS": {ACKed: "0123456789abcdef", Sent: "0123456789abcdef", Wildcard: true}}
	fleet.nodes = append(fleet.nodes,
		FleetEntry{Cursor: "r2/envoy-0000", Node: stale},
		FleetEntry{Cursor: "r2/garbled", Node: FleetNode{Node: "garbled", Replica: "r2"}, Err: errors.New("not JSON")})

	a := New(Options{Store: ts.st, Streams: ts.xds, Fleet: fleet, MaxPage: 2})
	get := func(path string) (int, FleetPage) {
		t.Helper()
		rec := serveAdmin(a, path)
		var p FleetPage
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
		return rec.Code, p
	}
	code, p := get("/debug/fleet")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 5, p.Total)
	require.Len(t, p.Replicas, 2)
	require.Equal(t, []string{"envoy-0000", "envoy-0001"}, []string{p.Nodes[0].Node, p.Nodes[1].Node})
	require.True(t, p.Nodes[0].Current)
	require.True(t, p.Nodes[0].Types["CDS"].Current)
	require.Equal(t, "/debug/fleet?after=r1%2Fenvoy-0001&limit=2", p.Next)

	var all []FleetPageNode
	for path := "/debug/fleet"; path != ""; path = p.Next {
		code, p = get(path)
		require.Equal(t, http.StatusOK, code)
		all = append(all, p.Nodes...)
	}
	require.Len(t, all, 5)
	require.Equal(t, "r2", all[3].Replica)
	require.False(t, all[3].Current, "a node on content this replica does not hold")
	require.Equal(t, "not JSON", all[4].Error)

	// The byte budget: a page ends before exceeding it, and says where to go on.
	a = New(Options{Store: ts.st, Streams: ts.xds, Fleet: fleet, MaxBytes: 1500})
	rec := serveAdmin(a, "/debug/fleet")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.LessOrEqual(t, rec.Body.Len(), 1500)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	require.NotEmpty(t, p.Nodes)
	require.Less(t, len(p.Nodes), 5)
	require.Equal(t, fmt.Sprintf("/debug/fleet?after=r1%%2F%s&limit=1000", p.Nodes[len(p.Nodes)-1].Node), p.Next)

	fleet.err = errors.New("etcd unreachable")
	rec = serveAdmin(a, "/debug/fleet")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), "etcd unreachable")

	// Without a fleet, there is no page; the index page lists it with one.
	require.Equal(t, http.StatusNotFound, serveAdmin(New(Options{Store: ts.st, Streams: ts.xds}), "/debug/fleet").Code)
	require.True(t, strings.Contains(serveAdmin(a, "/").Body.String(), "/debug/fleet"))
}

func nodesSorted(m map[string]*FleetNode) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// serveAdmin answers GET path from a caller on this host.
func serveAdmin(a *Admin, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r)
	return w
}

// The status a replica publishes of a real fleet of 10,000 synced Envoys on
// one connection (CDS and LDS wildcard, EDS and RDS by name, 5 clusters): what
// one poll of fleet status costs, Streams included. Run it with -benchtime=20x.
func BenchmarkFleetNodes10k(b *testing.B) {
	ts := startTestServer(b)
	w := xdstest.Workload{Clusters: 5, EndpointsPerCluster: 2, Listeners: 2, Routes: 2, VirtualHostsPerRoute: 2}
	commitWorkload(b, ts.st, w)
	startFleet(b, ts.cc, 10_000, w)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if n := len(FleetNodes("r1", ts.st.View(), ts.xds.Streams())); n != 10_000 {
			b.Fatalf("%d nodes", n)
		}
	}
}
