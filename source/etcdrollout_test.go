package source

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// stagedState is a minimal ApplyOptions.Rollout: a rollout named after its
// target, running.
func stagedState(prev EtcdRollout, base, target int64) ([]byte, error) {
	return json.Marshal(map[string]any{"id": fmt.Sprintf("r%d", target), "base": base, "target": target, "phase": EtcdRolloutRunning, "supersedes": prev.ID})
}

// A staged apply is always a new generation that keeps its base, writes the
// rollout state in the txn that flips current, and supersedes a running
// rollout (same base, the superseded target deleted); a plain apply is
// refused while a rollout runs.
func TestApplyEtcdStaged(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(3, "1s"))
	apply(t, cli, prefix, dir, ApplyOptions{})

	// One cluster changes: it would fit in place, but a staged change is a
	// new generation.
	writeFile(t, dir, "c.yaml", clusters(3, "2s"))
	dry := apply(t, cli, prefix, dir, ApplyOptions{Rollout: stagedState, DryRun: true})
	assert.Equal(t, ApplyNewGeneration, dry.Mode)
	assert.Equal(t, int64(1), dry.RolloutBase)
	assert.Contains(t, dry.Summary(), "would write generation 2 (3 txns) and stage it over generation 1")
	res := apply(t, cli, prefix, dir, ApplyOptions{Rollout: stagedState})
	assert.Equal(t, ApplyNewGeneration, res.Mode)
	assert.Equal(t, int64(2), res.Generation)
	assert.Equal(t, int64(1), res.RolloutBase)
	assert.Equal(t, "r2", res.Rollout)
	assert.Equal(t, 3, res.Txns, "the claim, one batch, the flip: the base is not deleted")
	assert.Contains(t, res.Summary(), "staged over generation 1 by rollout r2")
	dump := etcdDump(t, cli, prefix)
	assert.Equal(t, "2", dump["/current"].value)
	assert.Len(t, generationKeys(dump, 1), 3, "the base is kept")
	assert.Len(t, generationKeys(dump, 2), 3)
	state := dump["/rollout/state"]
	assert.Equal(t, dump["/current"].mod, state.mod, "the state is written in the txn that flips current")

	// The same directory again: the running rollout stages it already.
	assert.Equal(t, ApplyNone, apply(t, cli, prefix, dir, ApplyOptions{Rollout: stagedState}).Mode)

	// A plain apply is refused, and writes nothing.
	writeFile(t, dir, "c.yaml", clusters(3, "3s"))
	_, err := ApplyEtcd(context.Background(), cli, prefix, dir, ApplyOptions{})
	require.ErrorIs(t, err, ErrRolloutRunning)
	assert.Equal(t, dump, etcdDump(t, cli, prefix))

	// Staged again: it supersedes r2, over the same base.
	res = apply(t, cli, prefix, dir, ApplyOptions{Rollout: stagedState})
	assert.Equal(t, int64(3), res.Generation)
	assert.Equal(t, int64(1), res.RolloutBase)
	assert.Equal(t, "r2", res.Superseded)
	assert.Equal(t, 4, res.Txns, "the claim, one batch, the flip, the superseded target deleted")
	dump = etcdDump(t, cli, prefix)
	assert.Equal(t, "3", dump["/current"].value)
	assert.Len(t, generationKeys(dump, 1), 3, "the base is kept")
	assert.Empty(t, generationKeys(dump, 2), "the superseded target is deleted")
	r, err := ParseEtcdRollout([]byte(dump["/rollout/state"].value), 1)
	require.NoError(t, err)
	assert.Equal(t, EtcdRollout{ID: "r3", Base: 1, Target: 3, Phase: EtcdRolloutRunning}, EtcdRollout{ID: r.ID, Base: r.Base, Target: r.Target, Phase: r.Phase})
}

// A state that does not name the base and the target is refused before
// anything is written.
func TestApplyEtcdStagedStateChecked(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(1, "1s"))
	apply(t, cli, prefix, dir, ApplyOptions{})
	before := etcdDump(t, cli, prefix)
	writeFile(t, dir, "c.yaml", clusters(1, "2s"))
	_, err := ApplyEtcd(context.Background(), cli, prefix, dir, ApplyOptions{Rollout: func(EtcdRollout, int64, int64) ([]byte, error) {
		return []byte(`{"id": "x", "base": 7, "target": 8, "phase": "running"}`), nil
	}})
	require.ErrorContains(t, err, "does not name base 1 and target 2")
	assert.Equal(t, before, etcdDump(t, cli, prefix))
}

// recordedRollouts is an EtcdRollouts that keeps what it was told.
type recordedRollouts struct {
	mu         sync.Mutex
	base       map[int64]store.View
	committing []store.View
	committed  []string
}

func (r *recordedRollouts) Base(gen int64) (store.View, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.base[gen]
	return v, ok
}

func (r *recordedRollouts) Committing(s EtcdRollout, base store.View) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committing = append(r.committing, base)
	r.base = map[int64]store.View{s.Base: base}
}

func (r *recordedRollouts) Committed(s EtcdRollout, gen string, cur store.View) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committed = append(r.committed, fmt.Sprintf("%s:%s:%s", s.ID, s.Phase, gen))
	if !s.Active() {
		r.base = nil
	}
}

// A source that starts while a rollout runs commits its base, then its
// target: the base is a revision of the store whose unchanged entries the
// target shares. A source that follows a staged apply has the base already.
func TestEtcdSourceLoadsTheBaseOfARollout(t *testing.T) {
	cli, prefix := applyEtcd(t)
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", clusters(2, "1s"))
	writeFile(t, dir, "web.yaml", cluster("web", "1s"))
	apply(t, cli, prefix, dir, ApplyOptions{})

	// A replica running before the change.
	early, earlySt, _ := newEtcdSource(t, cli, prefix)
	earlyRo := &recordedRollouts{}
	early.rollouts = earlyRo
	_, err := early.Load(context.Background())
	require.NoError(t, err)
	runEtcd(t, early)

	writeFile(t, dir, "web.yaml", cluster("web", "2s"))
	apply(t, cli, prefix, dir, ApplyOptions{Rollout: stagedState})

	// A replica started mid-rollout.
	late, lateSt, _ := newEtcdSource(t, cli, prefix)
	lateRo := &recordedRollouts{}
	late.rollouts = lateRo
	_, err = late.Load(context.Background())
	require.NoError(t, err)

	for _, c := range []struct {
		name string
		st   *store.Store
		ro   *recordedRollouts
	}{{"early", earlySt, earlyRo}, {"late", lateSt, lateRo}} {
		eventuallyLong(t, c.name+" commits the target", func() bool {
			c.ro.mu.Lock()
			defer c.ro.mu.Unlock()
			return len(c.ro.committed) > 0 && c.ro.committed[len(c.ro.committed)-1] == "r2:running:2"
		})
		c.ro.mu.Lock()
		require.Len(t, c.ro.committing, 1, c.name)
		base := c.ro.committing[0]
		c.ro.mu.Unlock()
		cur := c.st.View()
		assert.Less(t, base.Revision(), cur.Revision(), c.name)
		bt, ct := base.Table("default", protocol.TypeCluster), cur.Table("default", protocol.TypeCluster)
		assert.NotEqual(t, bt.Get("web").Version, ct.Get("web").Version, c.name)
		assert.Same(t, bt.Get("c0"), ct.Get("c0"), "%s: an unchanged entry is shared", c.name)
		hist := cur.History("default")
		require.GreaterOrEqual(t, len(hist), 2, c.name)
		assert.Regexp(t, `^etcd gen 2, revision \d+: rollout r2$`, hist[0].Source, c.name)
	}
	assert.Regexp(t, `^etcd gen 1, revision \d+: base of rollout r2$`, lateSt.View().History("default")[1].Source,
		"a replica started mid-rollout commits the base first")
	assert.Regexp(t, `^etcd gen 1, revision \d+$`, earlySt.View().History("default")[1].Source,
		"a replica that followed the apply had the base: its list at start")

	// The rollout rolled back (current to the base, state rolled back): the
	// source commits the base and says so.
	txn(t, cli,
		clientv3.OpPut(EtcdCurrentKey(prefix), "1"),
		clientv3.OpPut(EtcdRolloutStateKey(prefix), `{"id": "r2", "base": 1, "target": 2, "phase": "rolled_back"}`))
	eventuallyLong(t, "the base served again", func() bool {
		earlyRo.mu.Lock()
		defer earlyRo.mu.Unlock()
		return earlyRo.committed[len(earlyRo.committed)-1] == "r2:rolled_back:1"
	})
	assert.Equal(t, earlyRo.committing[0].Table("default", protocol.TypeCluster).Get("web").Version,
		earlySt.View().Table("default", protocol.TypeCluster).Get("web").Version, "the same version as the base")
	assert.Regexp(t, `^etcd gen 1, revision \d+: rollback of rollout r2$`, earlySt.View().History("default")[0].Source)
}

// A rollout whose base generation holds no key (deleted by hand) is not
// routed: the source commits the target alone, never an empty base.
func TestEtcdSourceRolloutWithoutBase(t *testing.T) {
	cli, prefix := applyEtcd(t)
	txn(t, cli,
		clientv3.OpPut(EtcdCurrentKey(prefix), "2"),
		clientv3.OpPut(clusterKey(prefix, "2", "default", "web"), clusterValue("web", "2s")),
		clientv3.OpPut(EtcdRolloutStateKey(prefix), `{"id": "r2", "base": 1, "target": 2, "phase": "running"}`))
	e, st, log := newEtcdSource(t, cli, prefix)
	ro := &recordedRollouts{}
	e.rollouts = ro
	_, err := e.Load(context.Background())
	require.NoError(t, err)
	assert.Empty(t, ro.committing, "no base to route to")
	assert.Equal(t, []string{"r2:running:2"}, ro.committed)
	assert.Len(t, log.applied(), 1, "one commit: the target")
	assert.Equal(t, []string{"web"}, names(st, "default"))
}
