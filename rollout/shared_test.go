package rollout

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// memShared is a Shared in memory over replicas whose stores number
// revisions alike (they commit the same content in the same order).
type memShared struct {
	mu       sync.Mutex
	state    []byte
	version  int64
	replicas []*Manager
	watchers []chan struct{}
}

func (s *memShared) Load(context.Context) ([]byte, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.version, nil
}

func (s *memShared) Save(_ context.Context, state []byte, version int64) (int64, bool, error) {
	s.mu.Lock()
	if version != s.version {
		s.mu.Unlock()
		return 0, false, nil
	}
	s.state, s.version = state, s.version+1
	v := s.version
	s.mu.Unlock()
	s.poke()
	return v, true, nil
}

// Changed signals on every change of the state, and every few milliseconds
// for the standing of the nodes, which the replicas do not report here.
func (s *memShared) Changed(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers = append(s.watchers, ch)
	s.mu.Unlock()
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

func (s *memShared) poke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *memShared) Applied(_ context.Context, id string) (stream.Applied, error) {
	s.mu.Lock()
	replicas := s.replicas
	s.mu.Unlock()
	var sum stream.Applied
	for _, m := range replicas {
		if st, ok := m.Status(); !ok || st.ID != id {
			continue
		}
		a, ok := m.Applied()
		if !ok {
			continue
		}
		sum.Revision = a.Revision
		sum.Nodes = append(sum.Nodes, a.Nodes...)
		sum.ACKed += a.ACKed
		sum.NACKed += a.NACKed
		sum.Pending += a.Pending
	}
	return sum, nil
}

// Two replicas over one shared state serve the same stage: the canary on
// replica B gets the change replica A staged, its NACK, counted from B, rolls
// it back on both, and the nodes outside the stage on either never saw it.
func TestSharedReplicasServeOneStage(t *testing.T) {
	sh := &memShared{}
	stA, stB := store.New(), store.New()
	for _, st := range []*store.Store{stA, stB} {
		_, err := st.Commit(clusters("edge", time.Second)...)
		require.NoError(t, err)
	}
	a := newEnv(t, stA, Options{Shared: sh})
	b := newEnv(t, stB, Options{Shared: sh})
	sh.mu.Lock()
	sh.replicas = []*Manager{a.m, b.m}
	sh.mu.Unlock()
	f := newFleet(2)
	onA := a.client(t, f.rest[0], false)
	onB := map[string]*client{}
	for _, id := range []string{f.canary, f.ten, f.rest[1]} {
		onB[id] = b.client(t, id, false)
	}
	base := onA.webVersion

	// Each replica stages the shared change to its own store: the rollout's
	// id is made from the target's revision, the same on both, and the
	// second to save adopts what the first saved.
	stages, _ := ParseStages("10%,100%")
	plan := Plan{Stages: stages, Window: time.Minute}
	rb := mustStage(t, b.m, plan, clusters("edge", 2*time.Second))
	r := mustStage(t, a.m, plan, clusters("edge", 2*time.Second))
	require.Equal(t, rb.Status().ID, r.Status().ID)
	target := a.webVersion()
	require.Equal(t, target, b.webVersion())

	onB[f.ten].expectWeb(target)
	onB[f.canary].receiveOnly(target)
	onB[f.canary].nack("rejected on B")

	got, err := r.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, RolledBack, got.Phase)
	assert.Contains(t, got.Events[len(got.Events)-1].Message, "rejected on B")
	onB[f.canary].expectWeb(base)
	onB[f.ten].expectWeb(base)
	final, err := rb.Wait(t.Context())
	require.NoError(t, err)
	assert.Equal(t, RolledBack, final.Phase)
	assert.Equal(t, got.ID, final.ID)
	assert.Equal(t, base, b.webVersion(), "B committed the base again")
	assert.Equal(t, base, a.webVersion())
	assert.Empty(t, a.sent.sentTo(target), "A's node outside the stage")
	assert.Equal(t, sorted(f.canary, f.ten), b.sent.sentTo(target))
}
