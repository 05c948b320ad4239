package stream

import (
	"context"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

// Session is one stream's protocol without its transport: everything the gRPC
// handler does between receiving a request and sending a response, as pure
// code. The first request must name the node (R2), which decides the scope and
// the machine; a per-type service fixes the type of every request; a malformed
// request ends the stream with the gRPC status Receive returns. The gRPC
// handler is a loop around a Session: it Receives every request that is
// waiting, then sends Responses (S5; Step does both in one call). An
// in-memory transport (internal/conv) drives the same Receive and Responses,
// asking for Responses when its test waits for one: every request sent since
// is applied first, as when the handler found them all waiting.
//
// A Session is not safe for concurrent use.
type Session[Req request] struct {
	srv *Server
	// ctx is the stream's context, for Options.Authorize.
	ctx context.Context
	v   *variant[Req]
	// fixedType is the type URL of a per-type service; "" for ADS.
	fixedType string
	info      StreamInfo
	// requested is the scope Options.ScopeOf gave the node; info.Scope is
	// what it resolved to (DefaultScope when the node was opened, the store
	// had no scope requested; see Rescoped).
	requested string
	// sm is nil until the first request opened the stream.
	sm machine.Machine[Req]
	// at is when the newest request was received (Options.Now).
	at time.Time
	// watch, when set, is called with the scope and type of each request
	// before the machine reads the store for it (the handler's watcher).
	watch func(scope, typeURL string)
}

// request is a SotW or delta discovery request.
type request interface {
	*discoveryv3.DiscoveryRequest | *discoveryv3.DeltaDiscoveryRequest
	proto.Message
	GetTypeUrl() string
	GetNode() *corev3.Node
}

// SotWSession returns the session of a new SotW stream: of ADS when typeURL is
// "", else of the per-type service of typeURL. ctx is what Options.Authorize is
// given.
func (s *Server) SotWSession(ctx context.Context, typeURL string) *Session[*discoveryv3.DiscoveryRequest] {
	return newSession(s, ctx, &sotwVariant, typeURL, serviceName(typeURL))
}

// DeltaSession is SotWSession for a delta stream.
func (s *Server) DeltaSession(ctx context.Context, typeURL string) *Session[*discoveryv3.DeltaDiscoveryRequest] {
	return newSession(s, ctx, &deltaVariant, typeURL, serviceName(typeURL))
}

func newSession[Req request](s *Server, ctx context.Context, v *variant[Req], fixedType, service string) *Session[Req] {
	return &Session[Req]{
		srv:       s,
		ctx:       ctx,
		v:         v,
		fixedType: fixedType,
		info:      StreamInfo{ID: s.nextID.Add(1), Variant: v.name, Service: service, ConnectedAt: s.opts.Now()},
	}
}

// serviceName is the short name of the service of typeURL: "ads" for "".
func serviceName(typeURL string) string {
	if typeURL == "" {
		return "ads"
	}
	return strings.ToLower(protocol.Short(typeURL))
}

// Info returns what identifies the stream; node and scope once it is open.
func (x *Session[Req]) Info() StreamInfo { return x.info }

// Opened reports whether the first request has named the node.
func (x *Session[Req]) Opened() bool { return x.sm != nil }

// Status returns the status snapshot of the machine's newest step, nil before
// the first request.
func (x *Session[Req]) Status() *machine.Status {
	if x.sm == nil {
		return nil
	}
	return x.sm.Status()
}

// Receive applies one request. opened reports that it was the first, which
// opened the stream (its node and scope are now in Info). An error is the gRPC
// status the stream ends with: InvalidArgument for a malformed request or one
// without a node (R2), PermissionDenied for a node Authorize refuses.
func (x *Session[Req]) Receive(req Req) (rcv Received, opened bool, err error) {
	if err := x.checkType(req); err != nil {
		return Received{}, false, err
	}
	if x.sm == nil {
		if err := x.open(req.GetNode()); err != nil {
			return Received{}, false, err
		}
		opened = true
	}
	if x.watch != nil {
		x.watch(x.info.Scope, req.GetTypeUrl())
	}
	x.at = x.srv.opts.Now()
	rcv, err = x.sm.Receive(req, x.at, x.View())
	if err != nil {
		return rcv, opened, status.Errorf(codes.InvalidArgument, "node %q: %v", x.info.NodeID, err)
	}
	return rcv, opened, nil
}

// View returns the view of the store the stream is served now: the store's
// current view, or the one Options.Router serves its node (a rollout's earlier
// content); the store's current view before the stream is open.
func (x *Session[Req]) View() store.View {
	if x.sm == nil {
		return x.srv.store.View()
	}
	return x.srv.viewFor(x.info.Scope, x.info.Node)
}

// Responses returns what to send now that the store is at view v (R6: nothing
// when the client is current), in push order (R15); nothing before the stream
// is open.
func (x *Session[Req]) Responses(v store.View) []*Response {
	if x.sm == nil {
		return nil
	}
	return x.sm.Responses(v)
}

// Step applies every request waiting, in order, then returns what to send at
// the store's current view: S5, only the newest state is answered, so a store
// change never answers a subscription a waiting request has withdrawn. It is
// what the handler does each time it wakes.
func (x *Session[Req]) Step(waiting ...Req) ([]*Response, error) {
	for _, req := range waiting {
		if _, _, err := x.Receive(req); err != nil {
			return nil, err
		}
	}
	if err := x.Rescoped(); err != nil {
		return nil, err
	}
	return x.Responses(x.View()), nil
}

// Rescoped returns the status a stream ends with when its node would now be
// resolved to another scope than the one it was opened in: codes.Unavailable,
// so that the client reconnects and is resolved again. It happens to a node
// whose scope did not exist in the view it was served when its stream opened
// (it was served DefaultScope) once the view it is served holds it: a
// rollout's stage that creates the scope reaches it. Nil otherwise. It costs
// nothing for a stream opened in the scope its node asked for.
func (x *Session[Req]) Rescoped() error {
	if x.sm == nil || x.requested == x.info.Scope {
		return nil
	}
	if s := x.srv.resolveScope(x.requested, x.info.Node); s != x.info.Scope {
		return status.Errorf(codes.Unavailable, "node %q: the scope it is served is now %q, not %q: reconnect", x.info.NodeID, s, x.info.Scope)
	}
	return nil
}

// Message returns the message that carries r on the wire: a DiscoveryResponse
// or a DeltaDiscoveryResponse whose shared fields are one frame, encoded once
// for every stream sending the same content (see encode.go). It is what the
// handler sends; marshalled, it is an ordinary message of its type.
func (x *Session[Req]) Message(r *Response) proto.Message { return x.v.message(x.srv, r) }

// checkType fills in or checks the type URL of a request on a per-type service.
func (x *Session[Req]) checkType(req Req) error {
	if x.fixedType == "" {
		return nil
	}
	switch req.GetTypeUrl() {
	case "":
		x.v.setType(req, x.fixedType)
	case x.fixedType:
	default:
		return status.Errorf(codes.InvalidArgument, "request for %s on the %s service", req.GetTypeUrl(), x.info.Service)
	}
	return nil
}

// open starts the stream on its first request: R2, the first request names the
// node, which decides the scope. The stream keeps only keptNode of it.
func (x *Session[Req]) open(node *corev3.Node) error {
	s := x.srv
	if err := s.checkNode(node, "the first request of a stream"); err != nil {
		return err
	}
	if s.opts.Authorize != nil {
		if err := s.opts.Authorize(x.ctx, node); err != nil {
			return status.Errorf(codes.PermissionDenied, "node %q refused: %v", node.GetId(), err)
		}
	}
	x.requested = s.opts.ScopeOf(node)
	scope := s.resolveScope(x.requested, node)
	kept := keptNode(node)
	x.info.NodeID, x.info.Cluster, x.info.Scope, x.info.Node = kept.GetId(), kept.GetCluster(), scope, kept
	x.sm = x.v.newMachine(machine.Config{Scope: scope, Node: kept, Limits: s.opts.Limits, Caches: s.caches})
	return nil
}

// checkNode refuses a request (what) without a node (R2) or with a node over
// Limits.MaxNodeBytes, with InvalidArgument.
func (s *Server) checkNode(node *corev3.Node, what string) error {
	if err := s.opts.Limits.CheckNode(node, what); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// keptNode is what a stream keeps of its node for its life: what identifies the
// client and what status pages, CSDS node matchers and logs read (id, cluster,
// locality, user agent and metadata). Authorize and ScopeOf see the whole node
// first. The rest, the list of extensions an Envoy was built with (often most
// of its node), its client features and listening addresses, is read by nothing
// once the stream is open.
func keptNode(n *corev3.Node) *corev3.Node {
	return &corev3.Node{
		Id:                   n.GetId(),
		Cluster:              n.GetCluster(),
		Metadata:             n.GetMetadata(),
		Locality:             n.GetLocality(),
		UserAgentName:        n.GetUserAgentName(),
		UserAgentVersionType: n.UserAgentVersionType,
	}
}
