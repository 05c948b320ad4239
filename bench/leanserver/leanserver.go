// Package leanserver is the leanxds side of the load benchmarks: a store loaded
// with the benchmark workload and the three changes the benchmark times, behind
// the control API of bench/control. The xdsserver command serves it over gRPC;
// the smoke test serves it in process.
package leanserver

import (
	"fmt"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/workload"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Server holds the store and applies the benchmark's changes to it. It
// implements control.Server.
type Server struct {
	st *store.Store

	mu       sync.Mutex
	clusters []*clusterv3.Cluster
	clas     map[string]*endpointv3.ClusterLoadAssignment
}

// New commits res (resources by type URL, as xdstest.Workload.Resources makes
// them) to the default scope of a new store.
func New(res map[string][]proto.Message) (*Server, error) {
	s := &Server{st: store.New(), clas: map[string]*endpointv3.ClusterLoadAssignment{}}
	var changes []store.Change
	for _, t := range workload.Types {
		for _, m := range res[t] {
			changes = append(changes, store.Set(stream.DefaultScope, m))
			switch m := m.(type) {
			case *clusterv3.Cluster:
				s.clusters = append(s.clusters, m)
			case *endpointv3.ClusterLoadAssignment:
				s.clas[m.GetClusterName()] = m
			}
		}
	}
	if _, err := s.st.Commit(changes...); err != nil {
		return nil, err
	}
	return s, nil
}

// Store is the store to serve.
func (s *Server) Store() *store.Store { return s.st }

// Apply implements control.Server: one commit per change.
func (s *Server) Apply(kind, name string, seq, _ int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	v := s.st.View()
	n := func(t string) int { return v.Table(stream.DefaultScope, t).Len() }
	return control.Counts{
		Clusters: n(protocol.TypeCluster), Assignments: n(protocol.TypeEndpoint),
		Listeners: n(protocol.TypeListener), Routes: n(protocol.TypeRoute),
	}
}
