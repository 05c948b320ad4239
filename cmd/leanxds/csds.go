package main

import (
	"context"
	"errors"
	"io"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// csdsServer is the Client Status Discovery Service: what each connected client
// is served and whether it accepted it, per resource, from the server's records
// of each stream (what it sent, what was ACKed or NACKed).
type csdsServer struct {
	statusv3.UnimplementedClientStatusDiscoveryServiceServer
	st  *store.Store
	xds *stream.Server
	// visible returns which nodes the caller may see; nil lets every caller
	// see every node.
	visible func(ctx context.Context) (func(nodeID string) bool, error)
	// done is closed at shutdown, to end StreamClientStatus streams, which
	// would otherwise wait for their client's next request.
	done <-chan struct{}
}

// FetchClientStatus answers one request.
func (c *csdsServer) FetchClientStatus(ctx context.Context, req *statusv3.ClientStatusRequest) (*statusv3.ClientStatusResponse, error) {
	return c.status(ctx, req)
}

// StreamClientStatus answers each request of the stream, until the client or the
// server ends it.
func (c *csdsServer) StreamClientStatus(ss statusv3.ClientStatusDiscoveryService_StreamClientStatusServer) error {
	reqs := make(chan *statusv3.ClientStatusRequest)
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := ss.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- req:
			case <-ss.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case <-c.done:
			return status.Error(codes.Unavailable, "server shutting down")
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case req := <-reqs:
			resp, err := c.status(ss.Context(), req)
			if err != nil {
				return err
			}
			if err := ss.Send(resp); err != nil {
				return err
			}
		}
	}
}

// status builds the answer to one request: one ClientConfig per node that
// matches the request's node matchers and that the caller may see, with a
// GenericXdsConfig per resource each of its streams subscribes to.
func (c *csdsServer) status(ctx context.Context, req *statusv3.ClientStatusRequest) (*statusv3.ClientStatusResponse, error) {
	see := func(string) bool { return true }
	if c.visible != nil {
		f, err := c.visible(ctx)
		if err != nil {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		see = f
	}
	v := c.st.View()
	resp := &statusv3.ClientStatusResponse{}
	byNode := make(map[string]*statusv3.ClientConfig)
	for _, s := range c.xds.Streams() {
		if !see(s.NodeID) {
			continue
		}
		node := s.Node
		if node == nil {
			node = &corev3.Node{Id: s.NodeID, Cluster: s.Cluster}
		}
		ok, err := matchNode(req.GetNodeMatchers(), node)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "node_matchers: %v", err)
		}
		if !ok {
			continue
		}
		cc := byNode[s.NodeID]
		if cc == nil {
			cc = &statusv3.ClientConfig{Node: node}
			byNode[s.NodeID] = cc
			resp.Config = append(resp.Config, cc)
		}
		for _, ts := range s.Types {
			if !ts.Served {
				continue
			}
			for _, r := range servedResources(v, s.Scope, ts) {
				g, err := genericConfig(ts, r, !req.GetExcludeResourceContents())
				if err != nil {
					return nil, status.Errorf(codes.Internal, "%s %q: %v", ts.TypeURL, r.name, err)
				}
				cc.GenericXdsConfigs = append(cc.GenericXdsConfigs, g)
			}
		}
	}
	return resp, nil
}

// genericConfig describes one resource. version_info is the version the client
// last accepted for the type, as in the DiscoveryResponse it processed; a NACK
// puts the rejected version and the client's error in error_state.
func genericConfig(ts stream.TypeStatus, r served, contents bool) (*statusv3.ClientConfig_GenericXdsConfig, error) {
	g := &statusv3.ClientConfig_GenericXdsConfig{
		TypeUrl:      ts.TypeURL,
		Name:         r.name,
		VersionInfo:  ts.VersionACKed,
		ConfigStatus: r.config,
		ClientStatus: r.client,
	}
	if contents && r.entry != nil {
		a, err := displayAny(r.entry)
		if err != nil {
			return nil, err
		}
		g.XdsConfig = a
	}
	if r.client == adminv3.ClientResourceStatus_NACKED {
		n := ts.LastNACK
		g.ErrorState = &adminv3.UpdateFailureState{
			LastUpdateAttempt: timestamppb.New(n.At),
			Details:           n.Message,
			VersionInfo:       n.RejectedVersion,
		}
	}
	return g, nil
}
