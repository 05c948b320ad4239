package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// conn is one SotW stream: the state machine and what the gRPC loop around it
// needs. Two goroutines serve it: the handler's, which owns the state machine and
// sends, and a receiver that reads requests. A client that stops reading blocks
// only its own handler in Send; meanwhile store signals coalesce in its watcher,
// so when it reads again it gets the latest state, never a backlog.
type conn struct {
	srv  *Server
	info StreamInfo
	// fixedType is the type URL of a per-type service; "" for ADS.
	fixedType string

	// mu guards sotw: the handler steps it, Server.Streams reads it.
	mu   sync.Mutex
	sotw *SotW

	watcher *store.Watcher
	// watched are the (scope, type) pairs the watcher watches.
	watched map[string]bool
	// sent is when the newest response of each type was sent (ACK latency).
	sent map[string]sentAt
	// ctx is the stream's context; cancel ends the stream (Shutdown).
	ctx    context.Context
	cancel context.CancelFunc
}

// serveSotW runs one SotW stream until the client or the server ends it.
func (s *Server) serveSotW(ss grpc.ServerStream, fixedType, service string) (err error) {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	c := &conn{
		ctx:       ctx,
		cancel:    cancel,
		srv:       s,
		fixedType: fixedType,
		info:      StreamInfo{ID: s.nextID.Add(1), Variant: "sotw", Service: service, ConnectedAt: s.opts.Now()},
		watcher:   s.store.NewWatcher(),
		watched:   make(map[string]bool),
		sent:      make(map[string]sentAt),
	}
	defer c.watcher.Close()
	defer func() {
		if c.sotw != nil {
			s.remove(c)
			if s.hooks.StreamClosed != nil {
				s.hooks.StreamClosed(c.info, err)
			}
		}
	}()

	reqs := make(chan *discoveryv3.DiscoveryRequest, 1)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req := new(discoveryv3.DiscoveryRequest)
			if err := ss.RecvMsg(req); err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		select {
		case <-ctx.Done():
			if ss.Context().Err() == nil {
				return status.Error(codes.Unavailable, "server shutting down: reconnect")
			}
			return status.FromContextError(ctx.Err()).Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case req := <-reqs:
			if err := c.receive(req); err != nil {
				return err
			}
			// S5: answer only the newest state, after every request already here.
			for more := true; more; {
				select {
				case req := <-reqs:
					if err := c.receive(req); err != nil {
						return err
					}
				default:
					more = false
				}
			}
		case <-c.watcher.C:
		}
		if err := c.push(ss); err != nil {
			return err
		}
	}
}

// receive applies one request.
func (c *conn) receive(req *discoveryv3.DiscoveryRequest) error {
	s := c.srv
	if c.fixedType != "" {
		switch req.GetTypeUrl() {
		case "":
			req.TypeUrl = c.fixedType
		case c.fixedType:
		default:
			return status.Errorf(codes.InvalidArgument, "request for %s on the %s service", req.GetTypeUrl(), c.info.Service)
		}
	}
	if c.sotw == nil {
		if err := c.open(req); err != nil {
			return err
		}
	}
	if typeURL := req.GetTypeUrl(); typeURL != "" && !c.watched[typeURL] {
		// Watch before reading the view, so that no commit falls in between.
		c.watch(typeURL)
		if typeURL == protocol.TypeEndpoint {
			c.watch(protocol.TypeCluster) // explicit empty assignments follow the clusters (P2)
		}
	}
	now := s.opts.Now()
	c.mu.Lock()
	rcv, err := c.sotw.Receive(req, now, s.store.View())
	c.mu.Unlock()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "node %q: %v", c.info.NodeID, err)
	}
	if s.hooks.Request != nil {
		s.hooks.Request(c.info, rcv)
	}
	switch rcv.Kind {
	case KindACK:
		if s.hooks.ACK != nil {
			s.hooks.ACK(c.info, rcv.TypeURL, rcv.Version, now.Sub(c.sent[rcv.TypeURL].at))
		}
	case KindNACK:
		if s.hooks.NACK != nil {
			s.hooks.NACK(c.info, rcv.TypeURL, *rcv.NACK)
		}
	}
	return nil
}

// open starts the stream on its first request: R2, the first request names the node.
func (c *conn) open(req *discoveryv3.DiscoveryRequest) error {
	node := req.GetNode()
	if node == nil {
		return status.Error(codes.InvalidArgument, "the first request of a stream must carry a node (R2)")
	}
	s := c.srv
	if s.opts.Authorize != nil {
		if err := s.opts.Authorize(c.ctx, node); err != nil {
			return status.Errorf(codes.PermissionDenied, "node %q refused: %v", node.GetId(), err)
		}
	}
	scope := s.scopeFor(s.store.View(), s.opts.ScopeOf(node))
	c.info.NodeID, c.info.Cluster, c.info.Scope = node.GetId(), node.GetCluster(), scope
	if err := s.add(c); err != nil {
		return err
	}
	c.mu.Lock()
	c.sotw = NewSotW(scope, node, s.opts.Limits)
	c.mu.Unlock()
	if s.hooks.StreamOpened != nil {
		s.hooks.StreamOpened(c.info)
	}
	return nil
}

func (c *conn) watch(typeURL string) {
	if !c.watched[typeURL] {
		c.watched[typeURL] = true
		c.watcher.Watch(c.info.Scope, typeURL)
	}
}

// push sends whatever the client lacks at the store's current view.
func (c *conn) push(ss grpc.ServerStream) error {
	if c.sotw == nil {
		return nil
	}
	s := c.srv
	v := s.store.View()
	c.mu.Lock()
	resps := c.sotw.Responses(v)
	c.mu.Unlock()
	for _, r := range resps {
		frame := s.frames.sotw(r)
		if err := ss.SendMsg(sotwMessage(frame, r.Nonce)); err != nil {
			return err
		}
		now := s.opts.Now()
		c.sent[r.TypeURL] = sentAt{nonce: r.Nonce, at: now}
		if s.hooks.Response != nil {
			s.hooks.Response(c.info, r, now.Sub(v.CommittedAt()))
		}
	}
	return nil
}

// fetch answers a unary Fetch* call: the resources the request names, now.
func (s *Server) fetch(ctx context.Context, req *discoveryv3.DiscoveryRequest, fixedType string) (*discoveryv3.DiscoveryResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	if req.GetTypeUrl() == "" {
		req.TypeUrl = fixedType
	} else if req.GetTypeUrl() != fixedType {
		return nil, status.Errorf(codes.InvalidArgument, "fetch of %s from the %s service", req.GetTypeUrl(), protocol.Short(fixedType))
	}
	if req.GetNode() == nil {
		return nil, status.Error(codes.InvalidArgument, "a fetch request must carry a node (R2)")
	}
	v := s.store.View()
	sm := NewSotW(s.scopeFor(v, s.opts.ScopeOf(req.GetNode())), req.GetNode(), s.opts.Limits)
	fresh := &discoveryv3.DiscoveryRequest{TypeUrl: req.GetTypeUrl(), ResourceNames: req.GetResourceNames(), Node: req.GetNode()}
	if _, err := sm.Receive(fresh, s.opts.Now(), v); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	sm.typeState(fresh.TypeUrl).respond = true
	resps := sm.Responses(v)
	if len(resps) == 0 {
		return nil, status.Error(codes.Internal, "no response computed") // respond=true always answers
	}
	r := resps[0]
	return sotwMessage(s.frames.sotw(r), r.Nonce), nil
}

var errDeltaUnsupported = fmt.Errorf("incremental (delta) xDS is not served yet: use the state-of-the-world methods")
