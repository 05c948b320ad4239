// Package failover measures a replica's death: N Envoy-like clients (a mix of
// state of the world and delta) connect to replica A and hold their whole
// configuration; A dies (listener and streams closed at once); every client
// re-dials replica B, which holds the same content, and resumes with what it
// holds. It reports the time until every client is fully ACKed again and the
// bytes each was sent, against the same clients' first connect in the same
// run; and the time from a commit to every client through etcd and through
// the config directory.
package failover

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/protocol"
)

// order is the order Envoy subscribes in: CDS, then EDS for the clusters,
// LDS, then RDS for the listeners' route configurations.
var order = []string{protocol.TypeCluster, protocol.TypeEndpoint, protocol.TypeListener, protocol.TypeRoute}

// Client is one Envoy-like client on one ADS stream.
type Client struct {
	ID    string
	Delta bool

	// What it holds: SotW, the version of each type; delta, each resource's
	// version by type. names are the EDS and RDS subscriptions.
	versions map[string]string
	held     map[string]map[string]string
	names    map[string][]string

	cc *grpc.ClientConn
	s  adsStream
}

// Close closes the client's connection.
func (c *Client) Close() {
	if c.cc != nil {
		c.cc.Close()
	}
}

// Phase is what one connect of a client measured.
type Phase struct {
	Ready     time.Duration // from the dial to the last ACK the phase needs
	Bytes     int           // response bytes received
	Resources int           // resources received
}

type adsStream interface {
	send(typeURL, nonce, version string, names []string, initial map[string]string, first bool) error
	recv() (typeURL, version, nonce string, res []*anypb.Any, removed []string, size int, err error)
}

// Connect dials addr and subscribes as Envoy does. With resume, it first sends
// what it holds (SotW: version_info of each type and its names; delta:
// initial_resource_versions), as Envoy does on a new stream, and is ready once
// it has ACKed every response the server sends for them: the endpoints and
// routes (S6, D9), which a client waiting on them cannot tell from new ones.
// It returns when ready; the stream stays open until ctx ends.
func (c *Client) Connect(ctx context.Context, addr string, resume bool) (Phase, error) {
	start := time.Now()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return Phase{}, err
	}
	if c.cc != nil {
		c.cc.Close()
	}
	c.cc = cc
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
	var s adsStream
	if c.Delta {
		d, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			return Phase{}, err
		}
		s = deltaStream{d, &corev3.Node{Id: c.ID, Cluster: "bench"}}
	} else {
		d, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			return Phase{}, err
		}
		s = sotwStream{d, &corev3.Node{Id: c.ID, Cluster: "bench"}}
	}
	if c.versions == nil {
		c.versions, c.held, c.names = map[string]string{}, map[string]map[string]string{}, map[string][]string{}
	}
	c.s = s
	var ph Phase
	pending := map[string]bool{} // types whose response the phase waits for
	first := true
	sub := func(t string) error {
		var names []string
		if t == protocol.TypeEndpoint || t == protocol.TypeRoute {
			names = c.names[t]
		} else if c.Delta {
			names = []string{"*"}
		}
		var initial map[string]string
		if resume && c.Delta {
			initial = c.held[t]
		}
		v := ""
		if resume && !c.Delta {
			v = c.versions[t]
		}
		pending[t] = true
		err := s.send(t, "", v, names, initial, first)
		first = false
		return err
	}
	if resume {
		for _, t := range order {
			if err := sub(t); err != nil {
				return ph, err
			}
		}
		// Wildcard CDS and LDS at the versions held: nothing is owed (S3, D3).
		delete(pending, protocol.TypeCluster)
		delete(pending, protocol.TypeListener)
	} else if err := sub(protocol.TypeCluster); err != nil {
		return ph, err
	}
	for len(pending) > 0 {
		t, version, nonce, res, removed, size, err := s.recv()
		if err != nil {
			return ph, err
		}
		ph.Bytes += size
		ph.Resources += len(res)
		_, next, err := c.absorb(t, version, res, removed)
		if err != nil {
			return ph, err
		}
		if err := s.send(t, nonce, version, c.subscription(t), nil, false); err != nil { // ACK
			return ph, err
		}
		delete(pending, t)
		if !resume && next != "" {
			if err := sub(next); err != nil {
				return ph, err
			}
		}
	}
	ph.Ready = time.Since(start)
	return ph, nil
}

// subscription is the names a SotW ACK repeats.
func (c *Client) subscription(t string) []string {
	if c.Delta {
		return nil
	}
	return c.names[t]
}

// absorb records a response and returns the names it carried and the type to
// subscribe to next at start ("" if none).
func (c *Client) absorb(t, version string, res []*anypb.Any, removed []string) (names []string, next string, err error) {
	if c.held[t] == nil {
		c.held[t] = map[string]string{}
	}
	if !c.Delta {
		clear(c.held[t])
	}
	for _, name := range removed {
		delete(c.held[t], name)
	}
	var deps []string
	for _, a := range res {
		name, v, dep, err := decode(t, a)
		if err != nil {
			return nil, "", err
		}
		names = append(names, name)
		c.held[t][name] = v
		deps = append(deps, dep...)
	}
	c.versions[t] = version
	switch t {
	case protocol.TypeCluster:
		c.names[protocol.TypeEndpoint] = sortedKeys(c.held[t])
		if len(c.held[protocol.TypeEndpoint]) == 0 {
			next = protocol.TypeEndpoint
		}
	case protocol.TypeEndpoint:
		if len(c.held[protocol.TypeListener]) == 0 && c.versions[protocol.TypeListener] == "" {
			next = protocol.TypeListener
		}
	case protocol.TypeListener:
		set := map[string]bool{}
		for _, d := range deps {
			set[d] = true
		}
		c.names[protocol.TypeRoute] = sortedKeys(set)
		if c.versions[protocol.TypeRoute] == "" {
			next = protocol.TypeRoute
		}
	}
	return names, next, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// decode returns a resource's name, its version (delta: the resource's; SotW:
// none) and, for a listener, the route configurations it uses.
func decode(t string, a *anypb.Any) (name, version string, deps []string, err error) {
	var r discoveryv3.Resource
	if a.GetTypeUrl() == "type.googleapis.com/envoy.service.discovery.v3.Resource" {
		if err := a.UnmarshalTo(&r); err != nil {
			return "", "", nil, err
		}
		a, version = r.GetResource(), r.GetVersion()
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return "", "", nil, err
	}
	switch m := m.(type) {
	case *clusterv3.Cluster:
		return m.GetName(), version, nil, nil
	case *listenerv3.Listener:
		for _, fc := range m.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&h) == nil && h.GetRds() != nil {
					deps = append(deps, h.GetRds().GetRouteConfigName())
				}
			}
		}
		return m.GetName(), version, deps, nil
	case interface{ GetClusterName() string }:
		return m.GetClusterName(), version, nil, nil
	case interface{ GetName() string }:
		return m.GetName(), version, nil, nil
	}
	return "", "", nil, fmt.Errorf("unexpected %s", t)
}

type sotwStream struct {
	s    discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node *corev3.Node
}

func (s sotwStream) send(t, nonce, version string, names []string, _ map[string]string, first bool) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: nonce, VersionInfo: version, ResourceNames: names}
	if first {
		req.Node = s.node
	}
	return s.s.Send(req)
}

func (s sotwStream) recv() (string, string, string, []*anypb.Any, []string, int, error) {
	r, err := s.s.Recv()
	if err != nil {
		return "", "", "", nil, nil, 0, err
	}
	return r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), r.GetResources(), nil, proto.Size(r), nil
}

type deltaStream struct {
	s    discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node *corev3.Node
}

func (s deltaStream) send(t, nonce, _ string, names []string, initial map[string]string, first bool) error {
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: nonce, ResourceNamesSubscribe: names, InitialResourceVersions: initial}
	if first {
		req.Node = s.node
	}
	return s.s.Send(req)
}

func (s deltaStream) recv() (string, string, string, []*anypb.Any, []string, int, error) {
	r, err := s.s.Recv()
	if err != nil {
		return "", "", "", nil, nil, 0, err
	}
	res := make([]*anypb.Any, 0, len(r.GetResources()))
	for _, x := range r.GetResources() {
		a, err := anypb.New(x)
		if err != nil {
			return "", "", "", nil, nil, 0, err
		}
		res = append(res, a)
	}
	return r.GetTypeUrl(), r.GetSystemVersionInfo(), r.GetNonce(), res, r.GetRemovedResources(), proto.Size(r), nil
}

// Follow reads the stream Connect opened until it ends, ACKing every
// response; seen is called with each response's type and resource names.
func (c *Client) Follow(seen func(typeURL string, names []string)) error {
	for {
		t, version, nonce, res, removed, _, err := c.s.recv()
		if err != nil {
			return err
		}
		names, _, err := c.absorb(t, version, res, removed)
		if err != nil {
			return err
		}
		seen(t, names)
		if err := c.s.send(t, nonce, version, c.subscription(t), nil, false); err != nil {
			return err
		}
	}
}
