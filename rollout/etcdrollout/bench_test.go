package etcdrollout

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/stream"
)

// BenchmarkTally10k is what the deciding replica reads and counts each
// interval while a rollout runs, with 10,000 nodes on 4 replicas: the state
// and the 4 replicas' records (each summing its nodes' standing), at one etcd
// revision; the 10,000 nodes' records beside them are not read, but for
// those of the gone nodes a replica names (128-moved: as many as 4 records
// hold, each found on the next replica).
func BenchmarkTally10k(b *testing.B) {
	cli := etcdtest.Client(b)
	prefix := etcdtest.Prefix(b, cli)
	ctx := context.Background()
	st := State{ID: "r", Base: 1, Target: 2, Plan: rollout.Plan{Stages: []rollout.Stage{{Name: "100%"}}}, Phase: rollout.Running, StageStartedAt: time.Now()}
	sb, err := json.Marshal(st)
	require.NoError(b, err)
	_, err = cli.Put(ctx, source.EtcdRolloutStateKey(prefix), string(sb))
	require.NoError(b, err)
	var ops []clientv3.Op
	flush := func() {
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		require.NoError(b, err)
		ops = ops[:0]
	}
	for r := range 4 {
		v, _ := json.Marshal(admin.FleetReplica{Addr: "10.0.0.1:18000", Version: "test", Rollout: &admin.FleetReplicaRollout{ID: "r", ACKed: 2500}})
		ops = append(ops, clientv3.OpPut(source.EtcdReplicasPrefix(prefix)+fmt.Sprint("r", r), string(v)))
	}
	for i := range 10_000 {
		n := admin.FleetNode{Node: fmt.Sprintf("envoy-%05d", i), Scope: "edge", Replica: fmt.Sprint("r", i%4), ConnectedAt: time.Now(),
			Types: map[string]admin.FleetType{
				"CDS": {ACKed: "5f1c0e9a2b7d4c11", Sent: "5f1c0e9a2b7d4c11", Wildcard: true, Content: "5f1c0e9a2b7d4c11"},
				"EDS": {ACKed: "a0b1c2d3e4f50617", Sent: "a0b1c2d3e4f50617", Content: "0c1d2e3f40516273"},
			},
			Rollout: &admin.FleetRollout{ID: "r", State: stream.NodeACKed.String()}}
		v, _ := json.Marshal(n)
		ops = append(ops, clientv3.OpPut(source.EtcdNodesPrefix(prefix)+n.Replica+"/"+n.Node, string(v)))
		if len(ops) == 120 {
			flush()
		}
	}
	flush()
	r := New(Options{Client: cli, Prefix: prefix, ID: "bench"})
	b.Run("none-gone", func(b *testing.B) {
		for range b.N {
			_, _, t, ok, err := r.tally(ctx)
			require.NoError(b, err)
			require.True(b, ok && t.Ready && t.ACKed == 10_000 && t.Gone == 0)
		}
	})
	// Each replica names as many gone nodes as its record holds, all of them
	// moved to the next replica: 4 × 32 nodes looked for on 3 replicas each,
	// 384 reads.
	for r := range 4 {
		sum := &admin.FleetReplicaRollout{ID: "r", ACKed: 2500, Gone: admin.MaxFleetGoneNodes}
		for i := range admin.MaxFleetGoneNodes {
			sum.GoneNodes = append(sum.GoneNodes, fmt.Sprintf("envoy-%05d", 4*i+(r+1)%4))
		}
		v, _ := json.Marshal(admin.FleetReplica{Addr: "10.0.0.1:18000", Version: "test", Rollout: sum})
		ops = append(ops, clientv3.OpPut(source.EtcdReplicasPrefix(prefix)+fmt.Sprint("r", r), string(v)))
	}
	flush()
	b.Run("128-moved", func(b *testing.B) {
		for range b.N {
			_, _, t, ok, err := r.tally(ctx)
			require.NoError(b, err)
			require.True(b, ok && t.Ready && t.Gone == 0 && t.Moved == 4*admin.MaxFleetGoneNodes, "%+v", t)
		}
	})
}
