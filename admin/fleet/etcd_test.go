package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// etcdClient returns a client of the test cluster and a prefix of the test's
// own; it skips the test without a cluster.
func etcdClient(t testing.TB) (*clientv3.Client, string) {
	t.Helper()
	cli := etcdtest.Client(t)
	return cli, etcdtest.Prefix(t, cli)
}

// newClient returns a client of endpoints, closed when the test ends.
func newClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// fakeStreams is a Streams provider whose statuses a test sets.
type fakeStreams struct {
	mu      sync.Mutex
	streams []stream.StreamStatus
}

func (f *fakeStreams) Streams() []stream.StreamStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams
}

func (f *fakeStreams) set(s []stream.StreamStatus) {
	f.mu.Lock()
	f.streams = s
	f.mu.Unlock()
}

// synced returns the status of n nodes named prefix-N that hold version
// acked of CDS and were sent sent.
func synced(prefix string, n int, acked, sent string) []stream.StreamStatus {
	at := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	out := make([]stream.StreamStatus, n)
	for i := range out {
		out[i] = stream.StreamStatus{
			StreamInfo: stream.StreamInfo{ID: uint64(i + 1), NodeID: fmt.Sprintf("%s-%05d", prefix, i), Scope: "default", Variant: "sotw", Service: "ads", ConnectedAt: at},
			Types:      []stream.TypeStatus{{TypeURL: protocol.TypeCluster, Served: true, Wildcard: true, VersionSent: sent, NonceSent: "1", VersionACKed: acked}},
		}
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// eventually polls cond every 20ms for at most d.
func eventually(t testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// published returns what etcd holds under prefix/nodes/replica/, by node.
func published(t testing.TB, cli *clientv3.Client, prefix, replica string) map[string]admin.FleetNode {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"/nodes/"+replica+"/", clientv3.WithPrefix())
	require.NoError(t, err)
	out := map[string]admin.FleetNode{}
	for _, kv := range resp.Kvs {
		var n admin.FleetNode
		require.NoError(t, json.Unmarshal(kv.Value, &n))
		out[strings.TrimPrefix(string(kv.Key), prefix+"/nodes/"+replica+"/")] = n
	}
	return out
}

// startPublisher runs a publisher of streams as replica id until the test
// ends, or until the returned stop is called.
func startPublisher(t testing.TB, cli *clientv3.Client, prefix, id string, streams Streams, o Options) (*Publisher, func()) {
	t.Helper()
	if o.Store == nil {
		o.Store = store.New()
	}
	o.Logger = quietLogger()
	p, err := NewPublisher(cli, prefix, id, streams, o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// A replica publishes itself and each connected node under its lease; a
// change is written, a node that leaves is deleted, an unchanged node is not
// written again; a replica that stops takes its keys with it.
func TestPublisherWritesChangesOnly(t *testing.T) {
	cli, prefix := etcdClient(t)
	st := store.New()
	_, err := st.Commit(store.Set("default", xdstest.Cluster("web")))
	require.NoError(t, err)
	content := st.View().Table("default", protocol.TypeCluster).Digest().Version()
	streams := &fakeStreams{}
	streams.set(synced("envoy", 3, "v1", "v1"))
	p, stop := startPublisher(t, cli, prefix, "r1", streams, Options{Store: st, Interval: 20 * time.Millisecond, Addr: "127.0.0.1:18000", Version: "test"})

	eventually(t, 5*time.Second, func() bool { return len(published(t, cli, prefix, "r1")) == 3 }, "3 nodes published")
	got := published(t, cli, prefix, "r1")["envoy-00001"]
	require.Equal(t, admin.FleetNode{Node: "envoy-00001", Scope: "default", Replica: "r1", ConnectedAt: got.ConnectedAt,
		Types: map[string]admin.FleetType{"CDS": {ACKed: "v1", Sent: "v1", Wildcard: true, Content: content}}}, got)
	require.True(t, got.ConnectedAt.Equal(time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)))
	rep, err := cli.Get(context.Background(), prefix+"/replicas/r1")
	require.NoError(t, err)
	require.Len(t, rep.Kvs, 1)
	require.NotZero(t, rep.Kvs[0].Lease, "the replica's key is under its lease")
	var r admin.FleetReplica
	require.NoError(t, json.Unmarshal(rep.Kvs[0].Value, &r))
	require.Equal(t, "127.0.0.1:18000", r.Addr)

	// Polls with nothing changed write nothing.
	puts := p.Stats().Puts
	polls := p.Stats().Polls
	eventually(t, 5*time.Second, func() bool { return p.Stats().Polls >= polls+5 }, "5 more polls")
	require.Equal(t, puts, p.Stats().Puts, "an unchanged status is not written again")

	// One node moves on, one leaves.
	next := synced("envoy", 2, "v1", "v1")
	next[0].Types[0].VersionSent, next[0].Types[0].VersionACKed = "v2", "v2"
	streams.set(next)
	eventually(t, 5*time.Second, func() bool {
		nodes := published(t, cli, prefix, "r1")
		return len(nodes) == 2 && nodes["envoy-00000"].Types["CDS"].ACKed == "v2"
	}, "the change and the departure published")
	s := p.Stats()
	require.Equal(t, puts+1, s.Puts)
	require.EqualValues(t, 1, s.Deletes)
	require.Equal(t, 2, s.Nodes)

	// A NACK is published.
	nacked := synced("envoy", 2, "v1", "v1")
	nacked[1].Types[0].VersionSent = "v3"
	nacked[1].Types[0].LastNACK = &stream.NACK{Nonce: "2", Version: "v1", RejectedVersion: "v3", Message: "bad cluster", At: time.Now()}
	streams.set(nacked)
	eventually(t, 5*time.Second, func() bool {
		n := published(t, cli, prefix, "r1")["envoy-00001"].Types["CDS"].NACK
		return n != nil && n.Error == "bad cluster" && n.Version == "v3" && n.Nonce == "2"
	}, "the NACK published")

	stop()
	require.Empty(t, published(t, cli, prefix, "r1"), "a replica that stops revokes its lease")
	rep, err = cli.Get(context.Background(), prefix+"/replicas/r1")
	require.NoError(t, err)
	require.Empty(t, rep.Kvs)
}

// A replica that dies (its etcd client gone: no revoke, no keep-alive) keeps
// its nodes listed until its lease expires, then they vanish; another replica's
// stay.
func TestDeadReplicaVanishesWithItsLease(t *testing.T) {
	cli, prefix := etcdClient(t)
	dying := newClient(t, etcdtest.Endpoints(t))
	s1, s2 := &fakeStreams{}, &fakeStreams{}
	s1.set(synced("a", 2, "v1", "v1"))
	s2.set(synced("b", 2, "v1", "v1"))
	const ttl = 2 * time.Second // etcd's least lease, with its default election timeout
	startPublisher(t, dying, prefix, "r1", s1, Options{TTL: ttl, Interval: 20 * time.Millisecond})
	startPublisher(t, cli, prefix, "r2", s2, Options{TTL: ttl, Interval: 20 * time.Millisecond})
	eventually(t, 5*time.Second, func() bool {
		return len(published(t, cli, prefix, "r1")) == 2 && len(published(t, cli, prefix, "r2")) == 2
	}, "both replicas published")

	r := NewReader(cli, prefix)
	l, err := r.FleetNodes(context.Background(), "", 10)
	require.NoError(t, err)
	require.Equal(t, 4, l.Total)
	require.Len(t, l.Replicas, 2)

	killed := time.Now()
	require.NoError(t, dying.Close())
	// Its keys outlive it for the lease's TTL at most (and a second of
	// etcd's rounding and lease checks).
	eventually(t, ttl+3*time.Second, func() bool { return len(published(t, cli, prefix, "r1")) == 0 }, "the dead replica's nodes vanish")
	t.Logf("the dead replica's nodes vanished %s after it died (TTL %s)", time.Since(killed).Round(10*time.Millisecond), ttl)
	l, err = r.FleetNodes(context.Background(), "", 10)
	require.NoError(t, err)
	require.Equal(t, 2, l.Total)
	require.Len(t, l.Replicas, 1)
	require.Equal(t, "r2", l.Replicas[0].ID)
	require.Equal(t, "b-00000", l.Nodes[0].Node.Node)
}

// The reader lists the fleet a window at a time, in replica and node order,
// at one revision.
func TestReaderPages(t *testing.T) {
	cli, prefix := etcdClient(t)
	s1, s2 := &fakeStreams{}, &fakeStreams{}
	s1.set(synced("a", 3, "v1", "v1"))
	s2.set(synced("b", 2, "v1", "v2"))
	startPublisher(t, cli, prefix, "r1", s1, Options{Interval: 20 * time.Millisecond})
	startPublisher(t, cli, prefix, "r2", s2, Options{Interval: 20 * time.Millisecond})
	eventually(t, 5*time.Second, func() bool {
		return len(published(t, cli, prefix, "r1")) == 3 && len(published(t, cli, prefix, "r2")) == 2
	}, "both replicas published")
	r := NewReader(cli, prefix)
	var got []string
	after := ""
	for range 10 {
		l, err := r.FleetNodes(context.Background(), after, 2)
		require.NoError(t, err)
		require.Equal(t, 5, l.Total)
		for _, e := range l.Nodes {
			require.NoError(t, e.Err)
			got = append(got, e.Node.Replica+"/"+e.Node.Node)
			after = e.Cursor
		}
		if !l.More {
			break
		}
	}
	require.Equal(t, []string{"r1/a-00000", "r1/a-00001", "r1/a-00002", "r2/b-00000", "r2/b-00001"}, got)
}

// etcd unreachable for longer than the lease: the client gives the lease up,
// and once etcd is back the publisher takes a new one, under which it writes
// every node again, with what changed meanwhile.
func TestPublisherOutlivesAnEtcdOutage(t *testing.T) {
	cli, members := etcdtest.Disrupt(t)
	prefix := etcdtest.Prefix(t, cli)
	streams := &fakeStreams{}
	streams.set(synced("envoy", 3, "v1", "v1"))
	const ttl = 2 * time.Second
	p, _ := startPublisher(t, cli, prefix, "r1", streams, Options{TTL: ttl, Interval: 50 * time.Millisecond})
	eventually(t, 5*time.Second, func() bool { return len(published(t, cli, prefix, "r1")) == 3 }, "3 nodes published")

	members.StopAll()
	// Meanwhile a node leaves and one changes: written once etcd is back.
	next := synced("envoy", 2, "v1", "v1")
	next[1].Types[0].VersionACKed, next[1].Types[0].VersionSent = "v2", "v2"
	streams.set(next)
	time.Sleep(ttl + time.Second) // the outage to be survived: longer than the lease
	members.StartAll()

	eventually(t, 30*time.Second, func() bool {
		nodes := published(t, cli, prefix, "r1")
		return len(nodes) == 2 && nodes["envoy-00001"].Types["CDS"].ACKed == "v2"
	}, "the nodes published again")
	// Whether the lease is the one from before the outage is etcd's choice: a
	// new leader renews the leases it finds (its lessor's promotion), so an
	// outage longer than the TTL may keep it, and the publisher may find it
	// lost only later and take a new one. What matters is that the nodes end
	// up under a lease that lives.
	eventually(t, 30*time.Second, func() bool {
		resp, err := cli.Get(context.Background(), prefix+"/nodes/r1/envoy-00000")
		if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
			return false
		}
		ttl, err := cli.TimeToLive(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease))
		return err == nil && ttl.TTL > 0
	}, "the nodes under a live lease")
	require.NotZero(t, p.Stats().Errors, "the outage is counted")
}

// With Options.Rollout, a node's record carries its standing, and the
// replica's record names the stage only once a poll wrote every change: with
// the write rate bound deferring some, not before the last is written.
func TestPublisherRolloutStanding(t *testing.T) {
	cli, prefix := etcdClient(t)
	streams := &fakeStreams{}
	streams.set(synced("envoy", 30, "v1", "v1"))
	var mu sync.Mutex
	var sum *admin.FleetReplicaRollout
	standing := map[string]*admin.FleetRollout{}
	rollout := func() (*admin.FleetReplicaRollout, map[string]*admin.FleetRollout) {
		mu.Lock()
		defer mu.Unlock()
		return sum, standing
	}
	p, _ := startPublisher(t, cli, prefix, "r1", streams, Options{Interval: 20 * time.Millisecond, MaxWritesPerSecond: 10, Rollout: rollout})
	eventually(t, 10*time.Second, func() bool { return p.Stats().Nodes == 30 }, "30 nodes published")
	marker := func() *admin.FleetReplicaRollout {
		rep, err := cli.Get(context.Background(), prefix+"/replicas/r1")
		require.NoError(t, err)
		require.Len(t, rep.Kvs, 1)
		var r admin.FleetReplica
		require.NoError(t, json.Unmarshal(rep.Kvs[0].Value, &r))
		return r.Rollout
	}
	require.Nil(t, marker())

	// A stage selecting 20 nodes: 20 records to write at 10 a second.
	mu.Lock()
	standing = map[string]*admin.FleetRollout{}
	for i := range 20 {
		standing[fmt.Sprintf("envoy-%05d", i)] = &admin.FleetRollout{ID: "r", Stage: 0, State: "pending"}
	}
	rej := stream.Rejection{Detail: "bad", At: time.Now()}
	standing["envoy-00003"] = &admin.FleetRollout{ID: "r", Stage: 0, State: "nacked", Rejection: &rej}
	sum = &admin.FleetReplicaRollout{ID: "r", Pending: 19, NACKed: 1, NACKs: []admin.FleetNodeNACK{{Node: "envoy-00003", Rejection: rej}}}
	mu.Unlock()
	sawPartial := false
	for deadline := time.Now().Add(20 * time.Second); ; {
		require.True(t, time.Now().Before(deadline), "the stage not marked within 20s")
		m := marker() // before the records: the records read after it are at least as new
		withStanding := 0
		for _, n := range published(t, cli, prefix, "r1") {
			if n.Rollout != nil {
				withStanding++
			}
		}
		if m != nil {
			require.Equal(t, 19, m.Pending)
			require.Equal(t, "bad", m.NACKs[0].Rejection.Detail)
			require.Equal(t, 20, withStanding, "the stage is marked once every record is written")
			break
		}
		sawPartial = sawPartial || (withStanding > 0 && withStanding < 20)
		time.Sleep(20 * time.Millisecond)
	}
	require.True(t, sawPartial, "the rate bound wrote the records over several polls, the stage unmarked meanwhile")
	n := published(t, cli, prefix, "r1")["envoy-00003"]
	require.NotNil(t, n.Rollout)
	require.Equal(t, "nacked", n.Rollout.State)
	require.Equal(t, "bad", n.Rollout.Rejection.Detail)
	require.Nil(t, published(t, cli, prefix, "r1")["envoy-00025"].Rollout, "a node the stage does not select")
}
