package stream

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// twoRevStreams is how many streams BenchmarkTwoRevisions opens.
const twoRevStreams = 10_000

// BenchmarkTwoRevisions measures what serving one scope at two revisions at
// once costs against serving it at one, on 10,000 in-process streams (Sessions
// of one Server, driven as Envoy drives ADS: wildcard CDS, EDS for every
// cluster, wildcard LDS, RDS for every route configuration, every response
// ACKed) holding the default workload (1,000 clusters of 4 endpoints, 50
// listeners, 50 route configurations of 20 virtual hosts).
//
// "one" serves every node the store's current view (no Router). "two" has a
// Router that serves the nodes of Selector{Percent: 50} the current view and
// every other node base, the store's view captured before the change: the two
// revisions a rollout's 50% stage serves. The change is committed, then every
// stream connects and is served its view until it has nothing left to send;
// then the heap in use after two collections is read: heap-B/stream is its
// growth from before the streams opened (the store, its views and the server
// made) divided by the streams, heap-MiB its growth from before the store was
// built. The timed loop then commits the same kind of change again and drives
// every stream until it has nothing left to send: in "two" the nodes served
// base read base and send nothing. "stage" makes no commit: the Router moves
// the other half of the nodes from base to the current view (ns/promoted, per
// moved stream) and back (ns/returned: a stage withdrawn, as when a rollout
// restarts at its first stage or is rolled back), in turn.
//
// The change is "endpoint" (one endpoint of one cluster) or "clusters" (the
// connect timeout of every cluster, which R16 follows with every endpoint
// assignment).
func BenchmarkTwoRevisions(b *testing.B) {
	for _, variant := range []string{"sotw", "delta"} {
		for _, change := range []string{"endpoint", "clusters"} {
			for _, mode := range []string{"one", "two", "stage"} {
				b.Run(variant+"/"+change+"/"+mode, func(b *testing.B) {
					benchTwoRevisions(b, variant, change, mode)
				})
			}
		}
	}
}

// twoRevWorkload is the default workload, its resources by type.
type twoRevWorkload struct {
	clusters                 []*clusterv3.Cluster
	assignments              []*endpointv3.ClusterLoadAssignment
	clusterNames, routeNames []string
	all                      []store.Change
}

func newTwoRevWorkload() *twoRevWorkload {
	w := &twoRevWorkload{}
	for typeURL, ms := range xdstest.DefaultWorkload().Resources() {
		for _, m := range ms {
			w.all = append(w.all, store.Set(benchScope, m))
			switch m := m.(type) {
			case *clusterv3.Cluster:
				w.clusters = append(w.clusters, m)
				w.clusterNames = append(w.clusterNames, m.GetName())
			case *endpointv3.ClusterLoadAssignment:
				w.assignments = append(w.assignments, m)
			}
			if typeURL == protocol.TypeRoute {
				w.routeNames = append(w.routeNames, m.(interface{ GetName() string }).GetName())
			}
		}
	}
	slices.Sort(w.clusterNames)
	slices.Sort(w.routeNames)
	return w
}

// benchScope is the scope of every node and resource.
const benchScope = "edge"

// change returns change kind number seq.
func (w *twoRevWorkload) change(kind string, seq int) []store.Change {
	switch kind {
	case "endpoint":
		cla := proto.Clone(w.assignments[42]).(*endpointv3.ClusterLoadAssignment)
		sa := cla.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress()
		sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(20000 + seq%20000)}
		return []store.Change{store.Set(benchScope, cla)}
	case "clusters":
		timeout := durationpb.New(time.Second + time.Duration(seq%1000+1)*time.Millisecond)
		out := make([]store.Change, len(w.clusters))
		for i, c := range w.clusters {
			c = proto.Clone(c).(*clusterv3.Cluster)
			c.ConnectTimeout = timeout
			out[i] = store.Set(benchScope, c)
		}
		return out
	}
	panic(kind)
}

// halfRouter serves the nodes sel matches (every node when all is set) the
// current view and the others base. The store has one scope, so base is the
// view of every scope.
type halfRouter struct {
	sel  Selector
	base store.View
	all  bool
}

func (h *halfRouter) View(scope string, node *corev3.Node, cur store.View) store.View {
	if h.all || h.sel.Matches(scope, node) {
		return cur
	}
	return h.base
}

// benchClient is an Envoy-like client over a Session: it subscribes step by
// step and ACKs every response.
type benchClient interface {
	// settle sends what the stream has to send, marshalled as the handler
	// would, and applies the client's answers, until nothing is left; it
	// returns the number of responses.
	settle(b *testing.B) int
}

type sotwBenchClient struct {
	x     *Session[*discoveryv3.DiscoveryRequest]
	w     *twoRevWorkload
	names map[string][]string // subscribed names by type; nil slice: wildcard
}

type deltaBenchClient struct {
	x    *Session[*discoveryv3.DeltaDiscoveryRequest]
	w    *twoRevWorkload
	subs map[string]bool
}

// nextSubscription is what Envoy subscribes to once it got its first response
// of typeURL: the endpoints of every cluster, then every listener (nil names:
// wildcard), then their route configurations.
func nextSubscription(typeURL string, w *twoRevWorkload) (string, []string) {
	switch typeURL {
	case protocol.TypeCluster:
		return protocol.TypeEndpoint, w.clusterNames
	case protocol.TypeEndpoint:
		return protocol.TypeListener, nil
	case protocol.TypeListener:
		return protocol.TypeRoute, w.routeNames
	}
	return "", nil
}

func marshal(b *testing.B, m proto.Message) {
	buf, err := codec{}.Marshal(m)
	if err != nil || buf.Len() == 0 {
		b.Fatal(err)
	}
}

func (c *sotwBenchClient) settle(b *testing.B) int {
	n := 0
	for range 10 {
		rs := c.x.Responses(c.x.View())
		if len(rs) == 0 {
			return n
		}
		n += len(rs)
		for _, r := range rs {
			marshal(b, c.x.Message(r))
			reqs := []*discoveryv3.DiscoveryRequest{{TypeUrl: r.TypeURL, VersionInfo: r.Version, ResponseNonce: r.Nonce, ResourceNames: c.names[r.TypeURL]}}
			if typeURL, names := nextSubscription(r.TypeURL, c.w); typeURL != "" {
				if _, ok := c.names[typeURL]; !ok {
					c.names[typeURL] = names
					reqs = append(reqs, &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
				}
			}
			for _, req := range reqs {
				if _, _, err := c.x.Receive(req); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Fatal("a stream still has something to send after 10 rounds")
	return n
}

func (c *deltaBenchClient) settle(b *testing.B) int {
	n := 0
	for range 10 {
		rs := c.x.Responses(c.x.View())
		if len(rs) == 0 {
			return n
		}
		n += len(rs)
		for _, r := range rs {
			marshal(b, c.x.Message(r))
			reqs := []*discoveryv3.DeltaDiscoveryRequest{{TypeUrl: r.TypeURL, ResponseNonce: r.Nonce}}
			if typeURL, names := nextSubscription(r.TypeURL, c.w); typeURL != "" && !c.subs[typeURL] {
				c.subs[typeURL] = true
				if names == nil {
					names = []string{Wildcard}
				}
				reqs = append(reqs, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
			}
			for _, req := range reqs {
				if _, _, err := c.x.Receive(req); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Fatal("a stream still has something to send after 10 rounds")
	return n
}

// heapInUse returns the heap in use after two collections (the second frees
// what finalizers and weak references released in the first).
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func benchTwoRevisions(b *testing.B, variant, kind, mode string) {
	start := heapInUse()
	w := newTwoRevWorkload()
	st := store.New()
	if _, err := st.Commit(w.all...); err != nil {
		b.Fatal(err)
	}
	w.all = nil
	router := &halfRouter{sel: Selector{Percent: 50}}
	var opts Options
	if mode != "one" {
		// The rollout's base: the view before its change.
		router.base = st.View()
		opts.Router = router
	}
	seq := 0
	if _, err := st.Commit(w.change(kind, seq)...); err != nil {
		b.Fatal(err)
	}
	srv := New(st, opts)
	ctx := context.Background()
	before := heapInUse()

	clients := make([]benchClient, twoRevStreams)
	selected := 0
	for i := range clients {
		node := &corev3.Node{Id: fmt.Sprintf("node-%05d", i), Cluster: benchScope}
		if router.sel.Matches(benchScope, node) {
			selected++
		}
		var err error
		switch variant {
		case "sotw":
			c := &sotwBenchClient{x: srv.SotWSession(ctx, ""), w: w, names: map[string][]string{protocol.TypeCluster: nil}}
			_, _, err = c.x.Receive(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: protocol.TypeCluster})
			clients[i] = c
		case "delta":
			c := &deltaBenchClient{x: srv.DeltaSession(ctx, ""), w: w, subs: map[string]bool{protocol.TypeCluster: true}}
			_, _, err = c.x.Receive(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: protocol.TypeCluster, ResourceNamesSubscribe: []string{Wildcard}})
			clients[i] = c
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	settleAll := func() int {
		n := 0
		for _, c := range clients {
			n += c.settle(b)
		}
		return n
	}
	// Every stream holds the whole configuration of the view it is served.
	if n := settleAll(); n != 4*twoRevStreams {
		b.Fatalf("connect: %d responses, want 4 a stream", n)
	}
	held := heapInUse()
	// ResetTimer drops reported metrics: these are reported after the loop.
	heapMiB, heapPerStream := float64(held-start)/(1<<20), float64(held-before)/twoRevStreams

	responses := 0
	var forward, back time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		switch mode {
		case "stage":
			router.all = !router.all
		default:
			b.StopTimer()
			seq++
			if _, err := st.Commit(w.change(kind, seq)...); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		t0 := time.Now()
		responses += settleAll()
		if mode == "stage" && !router.all {
			back += time.Since(t0)
		} else {
			forward += time.Since(t0)
		}
	}
	b.ReportMetric(heapMiB, "heap-MiB")
	b.ReportMetric(heapPerStream, "heap-B/stream")
	b.ReportMetric(float64(selected), "selected")
	b.ReportMetric(float64(responses)/float64(b.N), "responses/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/twoRevStreams, "ns/stream")
	if mode == "stage" {
		// Per moved stream: to the current view (promote), back to base.
		moved := float64(twoRevStreams - selected)
		b.ReportMetric(float64(forward.Nanoseconds())/float64((b.N+1)/2)/moved, "ns/promoted")
		if b.N > 1 {
			b.ReportMetric(float64(back.Nanoseconds())/float64(b.N/2)/moved, "ns/returned")
		}
	}
	runtime.KeepAlive(router)
}
