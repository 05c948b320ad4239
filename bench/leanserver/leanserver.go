// Package leanserver is the leanxds side of the load benchmarks: a store loaded
// with the benchmark workload and the three changes the benchmark times, behind
// the control API of bench/control. The xdsserver command serves it over gRPC;
// the smoke test serves it in process.
package leanserver

import (
	"fmt"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/workload"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Server holds the store and applies the benchmark's changes to it. It
// implements control.Server.
type Server struct {
	mu sync.Mutex
	// cur is the content served; base, when set, the earlier revision
	// served to the nodes a rollout's stage does not select (Router).
	cur, base *content
}

// content is a store and the resources the changes start from.
type content struct {
	st       *store.Store
	clusters []*clusterv3.Cluster
	clas     map[string]*endpointv3.ClusterLoadAssignment
}

// New commits res (resources by type URL, as xdstest.Workload.Resources makes
// them) to the default scope of a new store.
func New(res map[string][]proto.Message) (*Server, error) {
	cur, err := newContent(res, nil)
	if err != nil {
		return nil, err
	}
	return &Server{cur: cur}, nil
}

// newContent commits res to a new store, every cluster changed by stage when
// it is set.
func newContent(res map[string][]proto.Message, stage func(*clusterv3.Cluster) *clusterv3.Cluster) (*content, error) {
	s := &content{st: store.New(), clas: map[string]*endpointv3.ClusterLoadAssignment{}}
	var changes []store.Change
	for _, t := range workload.Types {
		for _, m := range res[t] {
			switch c := m.(type) {
			case *clusterv3.Cluster:
				if stage != nil {
					c = stage(c)
					m = c
				}
				s.clusters = append(s.clusters, c)
			case *endpointv3.ClusterLoadAssignment:
				s.clas[c.GetClusterName()] = c
			}
			changes = append(changes, store.Set(stream.DefaultScope, m))
		}
	}
	if _, err := s.st.Commit(changes...); err != nil {
		return nil, err
	}
	return s, nil
}

// NewTwoRevisions is New serving two revisions of the configuration at once,
// as a rollout's stage does: the store holds res with a change staged (every
// cluster's per-connection buffer limit set), and a second store, the base,
// holds res as it was. Router serves the nodes of stream.Selector{Percent:
// percent} the store's content and every other node the base's. Apply
// commits each change to both, the base first, so that every change reaches
// every node, each from its own revision.
//
// The base is a store of its own, so the two revisions share no table or
// entry: it holds one more copy of the configuration than a rollout's base
// (which shares everything its change left alone) does.
func NewTwoRevisions(res map[string][]proto.Message, percent float64) (*Server, stream.Router, error) {
	base, err := newContent(res, nil)
	if err != nil {
		return nil, nil, err
	}
	cur, err := newContent(res, func(c *clusterv3.Cluster) *clusterv3.Cluster {
		c = proto.Clone(c).(*clusterv3.Cluster)
		c.PerConnectionBufferLimitBytes = wrapperspb.UInt32(64 << 10)
		return c
	})
	if err != nil {
		return nil, nil, err
	}
	return &Server{cur: cur, base: base}, &baseRouter{sel: stream.Selector{Percent: percent}, base: base.st}, nil
}

// baseRouter serves the nodes sel selects the current view, the others the
// base store's.
type baseRouter struct {
	sel  stream.Selector
	base *store.Store
}

func (r *baseRouter) View(scope string, node *corev3.Node, cur store.View) store.View {
	if r.sel.Matches(scope, node) {
		return cur
	}
	return r.base.View()
}

// Store is the store to serve.
func (s *Server) Store() *store.Store { return s.cur.st }

// Apply implements control.Server: one commit per change (per store).
func (s *Server) Apply(kind, name string, seq, _ int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base != nil {
		if err := s.base.apply(kind, name, seq); err != nil {
			return err
		}
	}
	return s.cur.apply(kind, name, seq)
}

func (s *content) apply(kind, name string, seq int) error {
	var changes []store.Change
	switch kind {
	case control.KindEndpoint:
		cla := s.clas[name]
		if cla == nil {
			return fmt.Errorf("no cluster %q", name)
		}
		changes = append(changes, store.Set(stream.DefaultScope, workload.Endpoint(cla, seq)))
	case control.KindCluster:
		if len(s.clusters) == 0 {
			return fmt.Errorf("no cluster to copy")
		}
		if _, dup := s.clas[name]; dup {
			return fmt.Errorf("cluster %q exists", name)
		}
		first := s.clusters[0]
		c, e := workload.AddCluster(first, s.clas[first.GetName()], name)
		s.clusters = append(s.clusters, c)
		s.clas[name] = e
		changes = append(changes, store.Set(stream.DefaultScope, c), store.Set(stream.DefaultScope, e))
	case control.KindAll:
		for _, c := range workload.AllClusters(s.clusters, seq) {
			changes = append(changes, store.Set(stream.DefaultScope, c))
		}
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	_, err := s.st.Commit(changes...)
	return err
}

// Counts implements control.Server.
func (s *Server) Counts() control.Counts {
	v := s.cur.st.View()
	n := func(t string) int { return v.Table(stream.DefaultScope, t).Len() }
	return control.Counts{
		Clusters: n(protocol.TypeCluster), Assignments: n(protocol.TypeEndpoint),
		Listeners: n(protocol.TypeListener), Routes: n(protocol.TypeRoute),
	}
}
