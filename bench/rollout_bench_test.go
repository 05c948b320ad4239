package bench_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/leanxds/leanxds/bench/workload"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// rolloutStreams is how many streams BenchmarkRollout opens.
const rolloutStreams = 10_000

// BenchmarkRollout measures a rollout.Manager serving 10,000 in-process SotW
// streams (stream.Session values of one Server, each driven as Envoy drives
// ADS, every response ACKed) holding the default workload. Each iteration
// stages a change with a plan whose first stage is Selector{Percent: 50},
// drives every stream until it has nothing left to send (the selected half is
// sent the change: ns/staged per such stream), then aborts it and drives
// every stream again (the rollback: the selected half is sent the base's
// content back, the other half nothing: ns/rolled-back per returned stream).
// heap-KiB is what the Go heap in use (after two collections) grew by while
// the stage served two revisions, against every stream holding the base.
//
// The change is "endpoint" (one endpoint of one cluster) or "clusters"
// (every cluster's connect timeout, which R16 follows with every endpoint
// assignment).
func BenchmarkRollout(b *testing.B) {
	for _, kind := range []string{"endpoint", "clusters"} {
		b.Run(kind+"/staged", func(b *testing.B) { benchRollout(b, kind, true) })
		b.Run(kind+"/committed", func(b *testing.B) { benchRollout(b, kind, false) })
	}
}

// rolloutClient is an Envoy-like SotW client over a Session.
type rolloutClient struct {
	x     *stream.Session[*discoveryv3.DiscoveryRequest]
	names map[string][]string // subscribed names by type; nil: wildcard
}

// settle has the stream send what it has to send and answers each response as
// Envoy does (ACK; after the first response of a type, the next type), until
// nothing is left; it returns the number of responses.
func (c *rolloutClient) settle(b *testing.B, clusterNames, routeNames []string) int {
	n := 0
	for range 10 {
		rs := c.x.Responses(c.x.View())
		if len(rs) == 0 {
			return n
		}
		n += len(rs)
		for _, r := range rs {
			_ = c.x.Message(r) // the shared frame, as the handler sends it
			reqs := []*discoveryv3.DiscoveryRequest{{TypeUrl: r.TypeURL, VersionInfo: r.Version, ResponseNonce: r.Nonce, ResourceNames: c.names[r.TypeURL]}}
			next, names := "", []string(nil)
			switch r.TypeURL {
			case protocol.TypeCluster:
				next, names = protocol.TypeEndpoint, clusterNames
			case protocol.TypeEndpoint:
				next = protocol.TypeListener
			case protocol.TypeListener:
				next, names = protocol.TypeRoute, routeNames
			}
			if _, ok := c.names[next]; next != "" && !ok {
				c.names[next] = names
				reqs = append(reqs, &discoveryv3.DiscoveryRequest{TypeUrl: next, ResourceNames: names})
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

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func benchRollout(b *testing.B, kind string, staged bool) {
	res := xdstest.DefaultWorkload().Resources()
	var (
		all                      []store.Change
		clusters                 []*clusterv3.Cluster
		cla                      *endpointv3.ClusterLoadAssignment
		clusterNames, routeNames []string
	)
	for _, typeURL := range workload.Types {
		for _, m := range res[typeURL] {
			all = append(all, store.Set(stream.DefaultScope, m))
			switch m := m.(type) {
			case *clusterv3.Cluster:
				clusters = append(clusters, m)
				clusterNames = append(clusterNames, m.GetName())
			case *endpointv3.ClusterLoadAssignment:
				if cla == nil {
					cla = m
				}
			case *routev3.RouteConfiguration:
				routeNames = append(routeNames, m.GetName())
			}
		}
	}
	change := func(seq int) []store.Change {
		if kind == "endpoint" {
			return []store.Change{store.Set(stream.DefaultScope, workload.Endpoint(cla, seq))}
		}
		var out []store.Change
		for _, c := range workload.AllClusters(clusters, seq) {
			out = append(out, store.Set(stream.DefaultScope, c))
		}
		return out
	}

	st := store.New()
	if _, err := st.Commit(all...); err != nil {
		b.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	m := rollout.New(st, rollout.Options{Logger: discard})
	srv := stream.New(st, stream.Options{Router: m, Logger: discard})
	m.Attach(srv)
	ctx := context.Background()
	plan := rollout.Plan{Stages: []rollout.Stage{
		{Name: "50%", Select: stream.Selector{Percent: 50}},
		{Name: "100%"},
	}, Window: time.Hour}

	clients := make([]*rolloutClient, rolloutStreams)
	selected := 0
	for i := range clients {
		node := &corev3.Node{Id: fmt.Sprintf("node-%05d", i), Cluster: stream.DefaultScope}
		if plan.Stages[0].Select.Matches(stream.DefaultScope, node) {
			selected++
		}
		c := &rolloutClient{x: srv.SotWSession(ctx, ""), names: map[string][]string{protocol.TypeCluster: nil}}
		if _, _, err := c.x.Receive(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: protocol.TypeCluster}); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	settleAll := func() int {
		n := 0
		for _, c := range clients {
			n += c.settle(b, clusterNames, routeNames)
		}
		return n
	}
	if n := settleAll(); n != 4*rolloutStreams {
		b.Fatalf("connect: %d responses, want 4 a stream", n)
	}
	base := heapInUse()

	var stagedTime, rolledBackTime time.Duration
	var stagedResponses, rolledBackResponses int
	var heapGrowth float64
	seq := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		seq++
		t0 := time.Now()
		if staged {
			ro, err := m.Stage(ctx, plan, "bench", func() (store.Result, error) { return st.Commit(change(seq)...) })
			if err != nil || ro == nil {
				b.Fatalf("stage: %v %v", ro, err)
			}
		} else if _, err := st.Commit(change(seq)...); err != nil {
			b.Fatal(err)
		}
		stagedResponses += settleAll()
		stagedTime += time.Since(t0)
		if seq == 1 {
			b.StopTimer()
			heapGrowth = (float64(heapInUse()) - float64(base)) / 1024
			b.StartTimer()
		}
		t1 := time.Now()
		if staged {
			if err := m.Abort("bench"); err != nil {
				b.Fatal(err)
			}
		} else if _, err := st.RollbackTo(st.View().Revision()-1, "bench"); err != nil {
			b.Fatal(err)
		}
		rolledBackResponses += settleAll()
		rolledBackTime += time.Since(t1)
		if s, _ := m.Status(); staged && s.Phase != rollout.RolledBack {
			b.Fatalf("after the abort: %s", s.Phase)
		}
	}
	n := float64(b.N)
	moved := float64(rolloutStreams)
	if staged {
		moved = float64(selected)
	}
	b.ReportMetric(float64(selected), "selected")
	b.ReportMetric(heapGrowth, "heap-KiB")
	b.ReportMetric(float64(stagedTime.Nanoseconds())/n/moved, "ns/pushed")
	b.ReportMetric(float64(rolledBackTime.Nanoseconds())/n/moved, "ns/rolled-back")
	b.ReportMetric(float64(stagedResponses)/n, "pushed-responses/op")
	b.ReportMetric(float64(rolledBackResponses)/n, "rolled-back-responses/op")
}
