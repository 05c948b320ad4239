package source

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/internal/etcdtest"
)

// recordingWatcher passes the watches of a client through, recording the key
// of every event they deliver.
type recordingWatcher struct {
	clientv3.Watcher
	mu   sync.Mutex
	keys []string
}

func (w *recordingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := w.Watcher.Watch(ctx, key, opts...)
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		for resp := range in {
			w.mu.Lock()
			for _, ev := range resp.Events {
				w.keys = append(w.keys, string(ev.Kv.Key))
			}
			w.mu.Unlock()
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (w *recordingWatcher) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.keys...)
}

func TestEtcdWatchRange(t *testing.T) {
	const p = "/leanxds"
	key, end := EtcdWatchRange(p)
	in := func(k string) bool { return k >= key && k < end }
	for _, k := range []string{
		EtcdCurrentKey(p),
		EtcdGenPrefix(p, "1"),
		EtcdResourceKey(p, "1", "edge", "type.googleapis.com/envoy.config.cluster.v3.Cluster", "xdstp://a/b/c"),
		EtcdResourceKey(p, "999999", "zzz", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "\xff"),
	} {
		assert.True(t, in(k), "%q is watched", k)
	}
	for _, k := range []string{
		p + "/applied", p + "/staging", p + "/rollout/x",
		EtcdNodesPrefix(p) + "r1/envoy-1", EtcdReplicasPrefix(p) + "r1",
		p + "/fleet/r1/envoy-1", // the old place of the fleet status: inside, hence moved
		p + "X/current", "/leanxd", "/leanxds0/gen/1/x",
	} {
		if k == p+"/fleet/r1/envoy-1" {
			assert.True(t, in(k), "P/fleet/ sorts between current and gen0: the fleet status lives under P/nodes/")
			continue
		}
		assert.False(t, in(k), "%q is not watched", k)
	}
}

// The fleet status every replica writes all the time (P/nodes/, P/replicas/)
// and apply's bookkeeping never reach the source's watch: the watch delivers
// only P/current and P/gen/ events, and the source's revision does not move
// for the others.
func TestEtcdFleetWritesDoNotWakeTheSource(t *testing.T) {
	cli := etcdtest.Client(t)
	rec := &recordingWatcher{Watcher: cli.Watcher}
	cli.Watcher = rec
	p := etcdtest.Prefix(t, cli)
	put(t, cli, EtcdCurrentKey(p), "1")
	put(t, cli, clusterKey(p, "1", "edge", "a"), clusterValue("a", "1s"))

	e, st, log := newEtcdSource(t, cli, p)
	_, err := e.Load(context.Background())
	require.NoError(t, err)
	runEtcd(t, e)
	loaded := e.Status().EtcdRevision

	// What the replicas and apply write besides the content: 200 fleet writes.
	var fleetRev int64
	for i := range 100 {
		put(t, cli, EtcdNodesPrefix(p)+fmt.Sprintf("r%d/envoy-%d", i%3, i), `{"node":"x"}`)
		fleetRev = put(t, cli, EtcdReplicasPrefix(p)+fmt.Sprintf("r%d", i%3), `{"addr":"127.0.0.1:1"}`)
	}
	put(t, cli, p+"/applied", `{}`)
	put(t, cli, p+"/staging", `{}`)
	assert.Equal(t, loaded, e.Status().EtcdRevision, "no revision seen for the fleet writes")

	// A progress notification moves the revision the watch would start again
	// from past them, so that a compaction of those revisions does not make
	// the source list again. (The source's watch context requires a leader:
	// the request goes to the same watch stream.)
	require.NoError(t, cli.RequestProgress(clientv3.WithRequireLeader(context.Background())))
	eventually(t, "the progress notification", func() bool {
		e.syncing.Lock()
		defer e.syncing.Unlock()
		return e.rev >= fleetRev
	})

	// A content write after them: the watch delivers in revision order, so
	// once the source has it, any event of the earlier writes would have
	// been delivered before it.
	last := put(t, cli, clusterKey(p, "1", "edge", "b"), clusterValue("b", "1s"))
	require.Greater(t, last, fleetRev)
	eventually(t, "the content write applied", func() bool { return e.Status().EtcdRevision == last })
	assert.Equal(t, []string{"a", "b"}, names(st, "edge"))
	assert.Equal(t, []string{clusterKey(p, "1", "edge", "b")}, rec.seen(), "the only event the watch delivered")
	assert.Equal(t, 2, log.count(Applied), "the load and the one content write")
}
