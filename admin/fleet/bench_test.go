package fleet

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// fleetSim is a Streams provider of n Envoys on one replica, each subscribed
// to CDS and LDS (wildcard) and EDS and RDS (by name), whose versions a
// benchmark moves as a commit and the ACKs that follow it would.
type fleetSim struct {
	mu      sync.Mutex
	streams []stream.StreamStatus
}

var simTypes = []string{protocol.TypeCluster, protocol.TypeEndpoint, protocol.TypeListener, protocol.TypeRoute}

func newFleetSim(n int, version string) *fleetSim {
	f := &fleetSim{streams: make([]stream.StreamStatus, n)}
	at := time.Now()
	for i := range f.streams {
		s := &f.streams[i]
		s.StreamInfo = stream.StreamInfo{ID: uint64(i + 1), NodeID: fmt.Sprintf("envoy-%05d", i), Scope: "default", Variant: "sotw", Service: "ads", ConnectedAt: at}
		for _, u := range simTypes {
			s.Types = append(s.Types, stream.TypeStatus{TypeURL: u, Served: true, Wildcard: protocol.FullState(u),
				VersionSent: version, NonceSent: "1", VersionACKed: version})
		}
	}
	return f
}

// Streams returns a copy, as stream.Server does: the statuses are snapshots.
func (f *fleetSim) Streams() []stream.StreamStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]stream.StreamStatus, len(f.streams))
	for i, s := range f.streams {
		out[i] = s
		out[i].Types = append([]stream.TypeStatus(nil), s.Types...)
	}
	return out
}

// update applies fn to nodes [from, to).
func (f *fleetSim) update(from, to int, fn func(s *stream.StreamStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := from; i < min(to, len(f.streams)); i++ {
		s := &f.streams[i]
		s.Types = append([]stream.TypeStatus(nil), s.Types...)
		fn(s)
	}
}

// send marks CDS and EDS of every node sent version v; ack marks nodes
// [from, to) as having ACKed what they were sent.
func (f *fleetSim) send(v string) {
	f.update(0, len(f.streams), func(s *stream.StreamStatus) {
		s.Types[0].VersionSent, s.Types[1].VersionSent = v, v
	})
}
func (f *fleetSim) ack(from, to int) {
	f.update(from, to, func(s *stream.StreamStatus) {
		for i := range s.Types {
			s.Types[i].VersionACKed = s.Types[i].VersionSent
		}
	})
}

// BenchmarkPoll10k is the CPU cost of one poll of 10,000 streams (the status
// of each node built, and diffed against what was written) when 5% of them
// changed: what a replica spends every Options.Interval, etcd aside.
func BenchmarkPoll10k(b *testing.B) {
	const n = 10_000
	sim := newFleetSim(n, "v1")
	st := store.New()
	sim.send("v2")
	written := admin.FleetNodes("r1", st.View(), sim.Streams())
	sim.ack(0, n/20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		changes := diff(written, admin.FleetNodes("r1", st.View(), sim.Streams()))
		if len(changes) != n/20 {
			b.Fatalf("%d changes", len(changes))
		}
	}
}

// rateProbe samples a publisher's writes every 100ms and keeps the most
// written in any one second: a publisher writes in bursts, at each poll, so a
// second holds up to two polls' writes (the bound's burst and a second's).
type rateProbe struct {
	stop    func()
	peak    float64
	samples []uint64
}

func probe(p *Publisher) *rateProbe {
	r := &rateProbe{}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			s := p.Stats()
			r.samples = append(r.samples, s.Puts+s.Deletes)
			if k := len(r.samples); k > 10 {
				r.peak = math.Max(r.peak, float64(r.samples[k-1]-r.samples[k-11]))
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	r.stop = func() { close(done); <-finished }
	return r
}

// BenchmarkFleet10k measures fleet status at 10,000 streams against the test
// etcd cluster: how long the first publication of 10,000 nodes takes, then
// a commit reaching every node (sent at once, ACKed over the next 2s), and
// the writes per second the publisher made, with the default bound and with
// none. Run it with -benchtime=1x.
func BenchmarkFleet10k(b *testing.B) {
	for _, bound := range []int{DefaultMaxWritesPerSecond, 1_000_000} {
		name := fmt.Sprintf("max-writes=%d", bound)
		if bound == 1_000_000 {
			name = "max-writes=none"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				fleet10k(b, bound)
			}
		})
	}
}

func fleet10k(b *testing.B, bound int) {
	const n = 10_000
	cli, prefix := etcdClient(b)
	count := func() int64 {
		r, err := cli.Get(context.Background(), prefix+"/nodes/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			b.Fatal(err)
		}
		return r.Count
	}
	sim := newFleetSim(n, "v1")
	p, stop := startPublisher(b, cli, prefix, "r1", sim, Options{MaxWritesPerSecond: bound})
	pr := probe(p)
	start := time.Now()
	eventually(b, 120*time.Second, func() bool { return p.Stats().Nodes == n && p.Stats().Pending == 0 }, "10k nodes published")
	first := time.Since(start)
	if c := count(); c != n {
		b.Fatalf("etcd holds %d nodes", c)
	}
	s0 := p.Stats()

	// A commit: every node is sent v2 at once, and ACKs it over 2s.
	start = time.Now()
	sim.send("v2")
	for i := range 20 {
		time.Sleep(100 * time.Millisecond)
		sim.ack(i*n/20, (i+1)*n/20)
	}
	// The first poll started after the last ACK that leaves nothing pending
	// wrote the rest; once the next poll starts, those writes are done.
	acked := p.Stats().Polls
	eventually(b, 120*time.Second, func() bool { s := p.Stats(); return s.Polls > acked && s.Pending == 0 }, "the commit published")
	last := p.Stats().Polls
	eventually(b, 10*time.Second, func() bool { return p.Stats().Polls > last }, "one more poll")
	commit := time.Since(start)
	s1 := p.Stats()
	pr.stop()
	resp, err := cli.Get(context.Background(), prefix+"/nodes/", clientv3.WithPrefix())
	if err != nil {
		b.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Count(kv.Value, []byte(`"acked":"v2"`)) != 2 {
			b.Fatalf("%s: %s", kv.Key, kv.Value)
		}
	}
	if len(resp.Kvs) != n {
		b.Fatalf("etcd holds %d nodes", len(resp.Kvs))
	}
	stop()

	b.ReportMetric(first.Seconds(), "s-first-10k")
	b.ReportMetric(float64(n)/first.Seconds(), "writes/s-first-10k")
	b.ReportMetric(commit.Seconds(), "s-commit-10k")
	b.ReportMetric(float64(s1.Puts-s0.Puts), "puts-commit")
	b.ReportMetric(pr.peak, "peak-writes/s")
	b.ReportMetric(float64(s1.Puts+s1.Deletes)/float64(s1.Txns), "keys/txn")
	b.Logf("bound %d/s: first publication of %d nodes %s; a commit to every node (20,000 status changes: sent, then ACKed over 2s) published in %s with %d puts (%d deferred by the bound); peak %.0f writes in one second; %d txns",
		bound, n, first.Round(10*time.Millisecond), commit.Round(10*time.Millisecond), s1.Puts-s0.Puts, s1.Deferred-s0.Deferred, pr.peak, s1.Txns)
}
