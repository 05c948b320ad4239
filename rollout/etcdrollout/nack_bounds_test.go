package etcdrollout

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

// A canary node's NACK detail is client-controlled and unbounded: two
// replicas each reporting one NACK with a 400 KB detail (each record fits in
// etcd) still roll back, since the rollback's state keeps each detail cut to
// rollout.MaxDetail bytes, in its reason and in its rejections.
func TestDecideRollsBackOnHugeNACKDetails(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	r := New(Options{Client: cli, Prefix: prefix, ID: "d"})
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{Percent: 10}}}, MaxNACKs: 1, Window: time.Hour}.Normalized()
	require.NoError(t, err)
	b, err := json.Marshal(State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running})
	require.NoError(t, err)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut(source.EtcdRolloutStateKey(prefix), string(b)), clientv3.OpPut(source.EtcdCurrentKey(prefix), "2")).Commit()
	require.NoError(t, err)

	detail := strings.Repeat("x", 400<<10)
	for _, id := range []string{"a", "b"} {
		putReplica(t, cli, prefix, id, &admin.FleetReplicaRollout{ID: "r", Stage: 0, NACKed: 1,
			NACKs: []admin.FleetNodeNACK{{Node: "n-" + id, Rejection: stream.Rejection{TypeURL: "CDS", Detail: detail}}}})
	}
	err = r.decide(ctx)
	got, _, rerr := Read(ctx, cli, prefix)
	require.NoError(t, rerr)
	require.Equal(t, rollout.RolledBack, got.Phase, "decide: %v", err)
	ev := got.Events[len(got.Events)-1]
	require.Len(t, ev.Rejections, 2)
	for _, rej := range ev.Rejections {
		require.Equal(t, rollout.BoundDetail(detail), rej.Detail)
	}
	require.Contains(t, ev.Message, "NACK from node n-a (replica a) of CDS: xxx")
	require.Contains(t, ev.Message, "NACK from node n-b (replica b) of CDS: xxx")
	require.Less(t, len(ev.Message), 3*rollout.MaxDetail)
	current, err := cli.Get(ctx, source.EtcdCurrentKey(prefix))
	require.NoError(t, err)
	require.Equal(t, "1", string(current.Kvs[0].Value), "the base is current again")
}

// A rollback's reason names the first few NACKs and how many more there are;
// its event keeps rollout.MaxRejections of them.
func TestDecideRollbackNamesAFewNACKs(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	r := New(Options{Client: cli, Prefix: prefix, ID: "d"})
	plan, err := rollout.Plan{Stages: []rollout.Stage{{Name: "canary", Select: stream.Selector{Percent: 10}}}, MaxNACKs: 1, Window: time.Hour}.Normalized()
	require.NoError(t, err)
	b, err := json.Marshal(State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running})
	require.NoError(t, err)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut(source.EtcdRolloutStateKey(prefix), string(b)), clientv3.OpPut(source.EtcdCurrentKey(prefix), "2")).Commit()
	require.NoError(t, err)
	for i := range 3 {
		id := fmt.Sprintf("r%d", i)
		sum := &admin.FleetReplicaRollout{ID: "r", Stage: 0, NACKed: admin.MaxFleetNACKs + 2}
		for j := range admin.MaxFleetNACKs {
			sum.NACKs = append(sum.NACKs, admin.FleetNodeNACK{Node: fmt.Sprintf("n-%s-%d", id, j), Rejection: stream.Rejection{TypeURL: "CDS", Detail: "bad"}})
		}
		putReplica(t, cli, prefix, id, sum)
	}
	require.NoError(t, r.decide(ctx))
	got, _, err := Read(ctx, cli, prefix)
	require.NoError(t, err)
	require.Equal(t, rollout.RolledBack, got.Phase)
	ev := got.Events[len(got.Events)-1]
	require.Len(t, ev.Rejections, rollout.MaxRejections)
	require.Equal(t, 3, strings.Count(ev.Message, "NACK from node"))
	require.Contains(t, ev.Message, "stage canary: 36 of its nodes NACKed (at most 1): NACK from node n-r0-0 (replica r0) of CDS: bad; ")
	require.Contains(t, ev.Message, "n-r0-2 (replica r0) of CDS: bad and 33 more; every node is served generation 1 again")
}

// The rollback never depends on its diagnostics: a state too large for
// etcd's request limit is written again with the reason cut short and
// without rejections.
func TestRollbackTooLargeIsWrittenWithoutDiagnostics(t *testing.T) {
	cli := etcdtest.Client(t)
	prefix := etcdtest.Prefix(t, cli)
	ctx := context.Background()
	r := New(Options{Client: cli, Prefix: prefix, ID: "d"})
	plan, err := rollout.Plan{Window: time.Hour}.Normalized()
	require.NoError(t, err)
	st := State{ID: "r", Base: 1, Target: 2, Plan: plan, Phase: rollout.Running}
	st.event(time.Now(), "started", "x", []stream.Rejection{{Detail: "earlier"}})
	b, err := json.Marshal(st)
	require.NoError(t, err)
	resp, err := cli.Txn(ctx).Then(clientv3.OpPut(source.EtcdRolloutStateKey(prefix), string(b)), clientv3.OpPut(source.EtcdCurrentKey(prefix), "2")).Commit()
	require.NoError(t, err)

	// Over etcd's default limit of 1.5 MiB; over the client's of 2 MiB.
	for _, n := range []int{1600 << 10, 2 << 20} {
		err = writeState(ctx, cli, prefix, st, resp.Header.Revision, st.rolledBack(time.Now(), strings.Repeat("y", n), nil), time.Minute)
		require.Error(t, err)
		require.True(t, tooLarge(err), "the state is refused: %v", err)
	}
	huge := strings.Repeat("y", 1600<<10)

	require.NoError(t, r.rollBack(ctx, st, resp.Header.Revision, time.Now(), huge, []stream.Rejection{{Detail: huge}}))
	got, _, err := Read(ctx, cli, prefix)
	require.NoError(t, err)
	require.Equal(t, rollout.RolledBack, got.Phase)
	ev := got.Events[len(got.Events)-1]
	require.Equal(t, rollout.BoundDetail(huge)+"; every node is served generation 1 again", ev.Message)
	require.Empty(t, ev.Rejections)
	require.Empty(t, got.Events[0].Rejections)
	current, err := cli.Get(ctx, source.EtcdCurrentKey(prefix))
	require.NoError(t, err)
	require.Equal(t, "1", string(current.Kvs[0].Value))
	require.False(t, tooLarge(nil))
}
