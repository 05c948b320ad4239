package rollout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// fleet is a set of node ids of one scope with known shares: canary is in 1%,
// ten in 10% but not 1%, rest in neither.
type fleet struct {
	canary string
	ten    string
	rest   []string
}

func newFleet(rest int) fleet {
	var f fleet
	for i := 0; f.canary == "" || f.ten == "" || len(f.rest) < rest; i++ {
		id := fmt.Sprintf("edge-%d", i)
		switch b := stream.Bucket(id); {
		case b < 100 && f.canary == "":
			f.canary = id
		case b >= 100 && b < 1000 && f.ten == "":
			f.ten = id
		case b >= 1000 && len(f.rest) < rest:
			f.rest = append(f.rest, id)
		}
	}
	return f
}

func (f fleet) all() []string { return append([]string{f.canary, f.ten}, f.rest...) }

func node(id string) *corev3.Node { return &corev3.Node{Id: id, Cluster: "edge"} }

// clusters commits a version of scope edge's clusters: web with a connect
// timeout of d, and api.
func clusters(scope string, d time.Duration) []store.Change {
	return []store.Change{
		store.ReplaceScope(scope),
		store.Set(scope, xdstest.Cluster("web", xdstest.WithConnectTimeout(d))),
		store.Set(scope, xdstest.Cluster("api")),
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// commitOf is a Stage's commit of changes to st.
func commitOf(st *store.Store, changes []store.Change) func() (store.Result, error) {
	return func() (store.Result, error) { return st.Commit(changes...) }
}

// waitStatus waits until the Manager's status satisfies ok, without sleeping:
// it wakes on every change of the state.
func waitStatus(t *testing.T, m *Manager, ok func(Status) bool) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		m.mu.Lock()
		var st Status
		if m.cur != nil {
			st = m.cur.statusLocked()
		}
		ch := m.changed
		m.mu.Unlock()
		if ok(st) {
			return st
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("status never reached the state wanted; last: phase %s stage %d events %v", st.Phase, st.Stage, whats(st))
		}
	}
}

func whats(st Status) []string {
	var out []string
	for _, e := range st.Events {
		out = append(out, e.What)
	}
	return out
}

func mustStage(t *testing.T, m *Manager, plan Plan, changes []store.Change) *Rollout {
	t.Helper()
	r, err := m.Stage(t.Context(), plan, "test", commitOf(m.st, changes))
	require.NoError(t, err)
	require.NotNil(t, r)
	return r
}

// mustBody returns the encoded cluster name of a SotW response.
func mustBody(t *testing.T, r *conv.Response, name string) []byte {
	t.Helper()
	for _, a := range r.GetResources() {
		var c clusterv3.Cluster
		if a.GetTypeUrl() == protocol.TypeCluster && a.UnmarshalTo(&c) == nil && c.GetName() == name {
			return a.GetValue()
		}
	}
	t.Fatalf("response %s carries no cluster %q", r, name)
	return nil
}

// gauge returns the value of an unlabelled metric of m.
func gauge(t *testing.T, m *Manager, name string) float64 {
	t.Helper()
	return testutil.ToFloat64(collectorOf(m, name, ""))
}

// collectorOf is the one metric of m named name (with label value label).
func collectorOf(m *Manager, name, label string) prometheus.Collector {
	return oneMetric{m, name, label}
}

type oneMetric struct {
	m           *Manager
	name, label string
}

func (o oneMetric) Describe(ch chan<- *prometheus.Desc) { o.m.Describe(ch) }
func (o oneMetric) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	o.m.Collect(all)
	close(all)
	for mt := range all {
		if !strings.Contains(mt.Desc().String(), `"`+o.name+`"`) {
			continue
		}
		var pb dto.Metric
		_ = mt.Write(&pb)
		if o.label != "" && (len(pb.GetLabel()) == 0 || pb.GetLabel()[0].GetValue() != o.label) {
			continue
		}
		ch <- mt
	}
}

// clients opens a client of every node of f on e's server, SotW or delta.
func (e *env) clients(t *testing.T, f fleet, delta bool) map[string]*client {
	out := map[string]*client{}
	for _, id := range f.all() {
		out[id] = e.client(t, id, delta)
	}
	return out
}

// memClients opens a client of every node of f in memory, SotW or delta.
func memClients(t *testing.T, mem *conv.Memory, f fleet, delta bool) map[string]*client {
	out := map[string]*client{}
	for _, id := range f.all() {
		out[id] = openClient(t, mem, id, delta)
	}
	return out
}

// edgeStore returns a store holding scope edge's clusters.
func edgeStore(t testing.TB) *store.Store {
	st := store.New()
	_, err := st.Commit(clusters("edge", time.Second)...)
	require.NoError(t, err)
	return st
}
