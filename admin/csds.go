package admin

import (
	"context"
	"errors"
	"io"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// csdsServer is the Client Status Discovery Service: what each connected client
// is served and whether it accepted it, per resource, from the server's records
// of each stream (what it sent, what was ACKed or NACKed).
//
// An answer is built node by node within a byte budget, counted as it grows: a
// thousand synced Envoys make an answer of hundreds of megabytes, which would
// cost the server as much memory again and which no client with gRPC's default
// 4 MiB receive limit can take anyway. FetchClientStatus refuses an answer over
// the budget; StreamClientStatus sends it in several messages within it.
type csdsServer struct {
	statusv3.UnimplementedClientStatusDiscoveryServiceServer
	st      *store.Store
	streams Streams
	// visible returns which nodes the caller may see, or why it may see none
	// (a gRPC status; another error is PermissionDenied); nil lets every
	// caller see every node.
	visible func(ctx context.Context) (func(nodeID string) bool, error)
	// maxBytes bounds the encoded size of each response (--csds-max-bytes).
	maxBytes int
	// done is closed at shutdown, to end StreamClientStatus streams, which
	// would otherwise wait for their client's next request.
	done <-chan struct{}
}

// FetchClientStatus answers one request in one message, or refuses it with
// ResourceExhausted when the answer would exceed the budget: building stops
// at the node that crosses it.
func (c *csdsServer) FetchClientStatus(ctx context.Context, req *statusv3.ClientStatusRequest) (*statusv3.ClientStatusResponse, error) {
	nodes, err := c.matched(ctx, req)
	if err != nil {
		return nil, err
	}
	v := c.st.View()
	resp := &statusv3.ClientStatusResponse{}
	size := 0
	for i, n := range nodes {
		cc, ccSize, err := c.clientConfig(v, n, !req.GetExcludeResourceContents(), c.maxBytes-size)
		if errors.Is(err, errOverBudget) {
			return nil, status.Errorf(codes.ResourceExhausted,
				"the answer exceeds the CSDS budget of %d bytes (--csds-max-bytes): %d nodes match, %d fit; "+
					"narrow node_matchers, set exclude_resource_contents, or use StreamClientStatus, which sends the answer in several messages",
				c.maxBytes, len(nodes), i)
		}
		if err != nil {
			return nil, err
		}
		resp.Config = append(resp.Config, cc)
		size += ccSize
	}
	return resp, nil
}

// StreamClientStatus answers each request of the stream, until the client or the
// server ends it. An answer that fits the budget is one message, as from
// FetchClientStatus; a larger one is sent in several, each holding whole nodes
// and within the budget, so that memory and every message stay bounded.
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
			return errShuttingDown
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case req := <-reqs:
			if err := c.streamAnswer(ss, req); err != nil {
				return err
			}
		}
	}
}

var errShuttingDown = status.Error(codes.Unavailable, "server shutting down")

// streamAnswer sends the answer to one request of a stream: one message, or
// as many as the budget needs. A node whose config alone exceeds the budget
// ends the stream with ResourceExhausted.
func (c *csdsServer) streamAnswer(ss statusv3.ClientStatusDiscoveryService_StreamClientStatusServer, req *statusv3.ClientStatusRequest) error {
	nodes, err := c.matched(ss.Context(), req)
	if err != nil {
		return err
	}
	v := c.st.View()
	page := &statusv3.ClientStatusResponse{}
	size := 0
	for _, n := range nodes {
		cc, ccSize, err := c.clientConfig(v, n, !req.GetExcludeResourceContents(), c.maxBytes)
		if errors.Is(err, errOverBudget) {
			return status.Errorf(codes.ResourceExhausted,
				"the config of node %q alone exceeds the CSDS budget of %d bytes (--csds-max-bytes): set exclude_resource_contents",
				n.node.GetId(), c.maxBytes)
		}
		if err != nil {
			return err
		}
		if size+ccSize > c.maxBytes {
			if err := ss.Send(page); err != nil {
				return err
			}
			select {
			case <-c.done:
				return errShuttingDown
			default:
			}
			page, size = &statusv3.ClientStatusResponse{}, 0
		}
		page.Config = append(page.Config, cc)
		size += ccSize
	}
	return ss.Send(page)
}

// matchedNode is a node a request selects, with its streams: a client may
// open one per type.
type matchedNode struct {
	node    *corev3.Node
	streams []stream.StreamStatus
}

// matched returns the nodes that match the request's node matchers and that
// the caller may see, in the order of their first stream.
func (c *csdsServer) matched(ctx context.Context, req *statusv3.ClientStatusRequest) ([]matchedNode, error) {
	see := func(string) bool { return true }
	if c.visible != nil {
		f, err := c.visible(ctx)
		if _, ok := status.FromError(err); err != nil && !ok {
			err = status.Error(codes.PermissionDenied, err.Error())
		}
		if err != nil {
			return nil, err
		}
		see = f
	}
	var out []matchedNode
	index := make(map[string]int)
	matchers := newNodeMatchers(req.GetNodeMatchers())
	for _, s := range c.streams.Streams() {
		if !see(s.NodeID) {
			continue
		}
		if i, ok := index[s.NodeID]; ok {
			out[i].streams = append(out[i].streams, s)
			continue
		}
		node := s.Node
		if node == nil {
			node = &corev3.Node{Id: s.NodeID, Cluster: s.Cluster}
		}
		ok, err := matchers.match(node)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "node_matchers: %v", err)
		}
		if !ok {
			continue
		}
		index[s.NodeID] = len(out)
		out = append(out, matchedNode{node: node, streams: []stream.StreamStatus{s}})
	}
	return out, nil
}

// errOverBudget stops clientConfig at the resource that takes a node's config
// past the room left for it.
var errOverBudget = errors.New("over the CSDS budget")

// clientConfig builds a node's ClientConfig, with a GenericXdsConfig per
// resource its streams subscribe to, and returns it with the bytes it adds to
// a ClientStatusResponse. It counts them as it goes and returns errOverBudget
// as soon as they exceed room.
func (c *csdsServer) clientConfig(v store.View, n matchedNode, contents bool, room int) (*statusv3.ClientConfig, int, error) {
	cc := &statusv3.ClientConfig{Node: n.node}
	body := embeddedSize(proto.Size(n.node))
	if embeddedSize(body) > room {
		return nil, 0, errOverBudget
	}
	for _, s := range n.streams {
		for _, ts := range s.Types {
			if !ts.Served {
				continue
			}
			for _, r := range servedResources(v, s.Scope, ts) {
				g, err := genericConfig(ts, r, contents)
				if err != nil {
					return nil, 0, status.Errorf(codes.Internal, "%s %q: %v", ts.TypeURL, r.name, err)
				}
				body += embeddedSize(proto.Size(g))
				if embeddedSize(body) > room {
					return nil, 0, errOverBudget
				}
				cc.GenericXdsConfigs = append(cc.GenericXdsConfigs, g)
			}
		}
	}
	return cc, embeddedSize(body), nil
}

// embeddedSize is the encoded size of a message field holding n bytes: its
// tag (one byte: every field counted here, ClientStatusResponse.config,
// ClientConfig.node and ClientConfig.generic_xds_configs, has a number below
// 16), the length and the bytes.
func embeddedSize(n int) int { return 1 + protowire.SizeBytes(n) }

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
