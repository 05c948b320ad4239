package admin

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// fleetWorkload is a realistic config for a fleet test: each Envoy is served 100
// clusters with 4 endpoints each, their assignments, 5 listeners and 5 route
// configurations of 10 virtual hosts: 210 resources.
var fleetWorkload = xdstest.Workload{Clusters: 100, EndpointsPerCluster: 4, Listeners: 5, Routes: 5, VirtualHostsPerRoute: 10}

// commitWorkload makes w the content of the default scope of st.
func commitWorkload(t testing.TB, st *store.Store, w xdstest.Workload) {
	t.Helper()
	changes := []store.Change{store.ReplaceScope("default")}
	for _, ms := range w.Resources() {
		for _, m := range ms {
			changes = append(changes, store.Set("default", m))
		}
	}
	_, err := st.Commit(changes...)
	require.NoError(t, err)
}

// startFleet opens n ADS streams on cc, one per node envoy-NNNN, each of which
// subscribes to every listener and cluster and to the routes and endpoints they
// use, as Envoy does, and ACKs everything: a synced fleet. The streams stay open
// until the test ends.
func startFleet(t testing.TB, cc grpc.ClientConnInterface, n int, w xdstest.Workload) {
	t.Helper()
	res := w.Resources()
	names := func(typeURL string) []string {
		var out []string
		for _, m := range res[typeURL] {
			out = append(out, resources.NameOf(m))
		}
		return out
	}
	subs := []struct {
		typeURL string
		names   []string
	}{
		{protocol.TypeCluster, nil},
		{protocol.TypeEndpoint, names(protocol.TypeEndpoint)},
		{protocol.TypeListener, nil},
		{protocol.TypeRoute, names(protocol.TypeRoute)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := syncOne(ctx, client, fmt.Sprintf("envoy-%04d", i), subs); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
}

// syncOne opens one stream, subscribes to each type in turn and ACKs it.
func syncOne(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient, id string, subs []struct {
	typeURL string
	names   []string
}) error {
	st, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, s := range subs {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: s.typeURL, ResourceNames: s.names}
		if i == 0 {
			req.Node = node(id, "edge")
		}
		if err := st.Send(req); err != nil {
			return err
		}
		resp, err := st.Recv()
		if err != nil {
			return fmt.Errorf("%s %s: %w", id, protocol.Short(s.typeURL), err)
		}
		req.Node = nil
		req.VersionInfo, req.ResponseNonce = resp.GetVersionInfo(), resp.GetNonce()
		if err := st.Send(req); err != nil {
			return err
		}
	}
	return nil
}

// heapGrowth samples the bytes of heap objects (live, or dead and not yet
// swept) every millisecond until stop is called, which returns the highest
// sample's growth over the first.
func heapGrowth() (stop func() uint64) {
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		rtmetrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := read()
	peak := base
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, read())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return max(peak, read()) - base
	}
}

// allocated returns the bytes allocated on the heap since the process started.
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// One FetchClientStatus of every node of a synced fleet of 1000 Envoys, by a
// client with gRPC's default limits. peak-heap-MiB is the growth of the heap
// during the call (sampled every millisecond) over the heap before it, with
// GOGC=10 so that it counts what the call holds rather than the garbage the
// collector lets pile up above a large live heap.
func BenchmarkCSDSFetchFleet(b *testing.B) {
	ts := startTestServer(b)
	commitWorkload(b, ts.st, fleetWorkload)
	startFleet(b, ts.cc, 1000, fleetWorkload)
	client := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc)
	var peak uint64
	var code codes.Code
	b.ReportAllocs()
	b.ResetTimer()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	for b.Loop() {
		runtime.GC()
		stop := heapGrowth()
		_, err := client.FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{})
		peak = max(peak, stop())
		code = status.Code(err)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.Logf("status %s", code)
	// What a client that lifts its limit receives.
	resp, err := client.FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{}, grpc.MaxCallRecvMsgSize(1<<30))
	b.Logf("without the client's limit: %d nodes, %d bytes, status %s", len(resp.GetConfig()), proto.Size(resp), status.Code(err))
}

// The whole fleet of BenchmarkCSDSFetchFleet over StreamClientStatus, in
// messages within the budget.
func BenchmarkCSDSStreamFleet(b *testing.B) {
	ts := startTestServer(b)
	commitWorkload(b, ts.st, fleetWorkload)
	startFleet(b, ts.cc, 1000, fleetWorkload)
	client := statusv3.NewClientStatusDiscoveryServiceClient(ts.cc)
	var peak uint64
	var messages int
	b.ReportAllocs()
	b.ResetTimer()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	for b.Loop() {
		runtime.GC()
		stop := heapGrowth()
		st, err := client.StreamClientStatus(context.Background())
		require.NoError(b, err)
		require.NoError(b, st.Send(&statusv3.ClientStatusRequest{}))
		nodes := 0
		for messages = 0; nodes < 1000; messages++ {
			resp, err := st.Recv()
			require.NoError(b, err)
			nodes += len(resp.GetConfig())
		}
		require.NoError(b, st.CloseSend())
		peak = max(peak, stop())
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(messages), "messages")
}
