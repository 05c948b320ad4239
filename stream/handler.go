package stream

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

// conn is one stream: its state machine and what the gRPC loop around it needs.
// Two goroutines serve it: the handler's, which owns the state machine and sends,
// and a receiver that reads requests. A client that stops reading blocks only its
// own handler in Send; meanwhile store signals coalesce in its watcher, so when
// it reads again it gets the latest state, never a backlog. The send timeout
// bounds how long it may block (see expire).
type conn struct {
	srv *Server
	// info is the stream's identity, the handler's copy: other goroutines read
	// shownInfo.
	info StreamInfo
	// shownInfo and shownStatus are what other goroutines read of the stream:
	// its identity, published when it is made and when it opens, and the
	// status snapshot of its machine's newest step. Both are immutable.
	shownInfo   atomic.Pointer[StreamInfo]
	shownStatus atomic.Pointer[machine.Status]
	// opened is set once the first request named the node.
	opened atomic.Bool
	// requested is the scope the node asked for when it differs from the
	// one it was resolved to (Session.Rescoped); nil otherwise.
	requested atomic.Pointer[string]

	watcher *store.Watcher
	// watched are the types the watcher watches in the stream's scope, kept here
	// so that a request does not take the store's watch lock to find out. A
	// stream asks for a few types: small slices cost a stream less than maps.
	watched []string
	// sent is when the newest response of each type was sent (ACK latency).
	sent []sentAt
	// ctx is the stream's context (gRPC's).
	ctx context.Context
	// in carries the receiver's requests and the error that ends receiving, and
	// Shutdown's request to end the stream, to the handler. The handler waits on
	// in, its watcher and ctx: a goroutine blocked in select holds a runtime
	// record for each channel, so a stream waits on no more than it needs.
	in chan inbound

	// netConn is the stream's connection, when Listener accepted it: closing it
	// is what ends a send that gRPC's flow control holds.
	netConn *trackedConn
	// timer bounds the wait for the first request, then each send (expire); nil
	// when no timeout applies.
	timer *time.Timer
	// waitingSince is when the wait the timer bounds began, as Server.since: the
	// stream's start until the first request, then the start of the send in
	// progress; 0 while the stream waits on its client for nothing.
	waitingSince atomic.Int64
	// cut says why the server closed the stream's connection, if it did.
	cut atomic.Int32
	// unanswered counts the types whose newest response the client has not
	// answered yet (sent): Shutdown closes the connection of a client that may
	// have stopped reading.
	unanswered atomic.Int32
}

// Why the server closed a stream's connection (conn.cut).
const (
	cutNone int32 = iota
	// cutSendTimeout: a send took longer than Options.SendTimeout.
	cutSendTimeout
	// cutShutdown: at Shutdown, the stream was sending, or its client had not
	// answered its newest response (see stop).
	cutShutdown
)

// inbound is what reaches the handler on in: a request, or the error that ends
// the stream (the receive error, errShutdown, or the first-request timeout).
type inbound struct {
	req proto.Message
	err error
}

// errShutdown is Shutdown's request to end a stream.
var errShutdown = status.Error(codes.Unavailable, "server shutting down: reconnect")

// stop asks the handler to end the stream with Unavailable. It does not wait:
// when a request is already pending, a short-lived goroutine hands the end over
// once the handler has taken it. A client that is being sent a response, or
// has not answered one, may have stopped reading: its status would wait behind
// what gRPC holds for it, and the connection with it, so its connection is
// closed instead (when Listener accepted it).
func (c *conn) stop() {
	x := inbound{err: errShutdown}
	select {
	case c.in <- x:
	default:
		go c.deliver(x)
	}
	if c.opened.Load() && (c.waitingSince.Load() != 0 || c.unanswered.Load() > 0) {
		c.closeConn(cutShutdown) // see push for a send that starts now
	}
}

// closeConn closes the stream's connection, if Listener accepted it, and
// records why, unless it was closed already.
func (c *conn) closeConn(why int32) {
	if c.netConn != nil && c.cut.CompareAndSwap(cutNone, why) {
		_ = c.netConn.Close()
	}
}

// deliver hands x to the handler, or drops it once the stream has ended (gRPC
// cancels ctx when the handler returns).
func (c *conn) deliver(x inbound) bool {
	select {
	case c.in <- x:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// expire runs when the stream's timer fires. A stream that has sent no request
// within Options.FirstRequestTimeout is ended by its handler; a send that has
// lasted Options.SendTimeout can only be ended by closing the connection: gRPC
// offers no way to abandon one send, and the handler is blocked in it. The
// timer may have been stopped or re-armed as it fired (the first request came,
// a send ended and the next began): what it bounds is checked against
// waitingSince, and a stale firing does nothing.
func (c *conn) expire() {
	s := c.srv
	opened := c.opened.Load() // before waitingSince: open clears waitingSince first
	since := c.waitingSince.Load()
	if since == 0 {
		return
	}
	waited := time.Duration(s.since() - since)
	if !opened {
		if waited >= s.opts.firstRequestTimeout() {
			c.deliver(inbound{err: s.errNoFirstRequest})
		}
		return
	}
	if waited < s.opts.sendTimeout() || !c.cut.CompareAndSwap(cutNone, cutSendTimeout) {
		return
	}
	// Counted and logged before the connection closes, which ends the stream.
	// A send is timed only on a connection Listener accepted (sending).
	s.sendTimeouts.Add(1)
	info := c.shownInfo.Load()
	s.opts.Logger.Warn("send timeout: the client has taken none of a response; closing its connection",
		"stream", info.ID, "node", info.NodeID, "scope", info.Scope, "peer", c.netConn.key, "waited", waited.Round(time.Millisecond))
	_ = c.netConn.Close()
}

// sending marks the start (true) or the end of a send, arming the send timeout.
func (c *conn) sending(start bool) {
	if c.netConn == nil {
		return // nothing could end the send
	}
	d := c.srv.opts.sendTimeout()
	if !start {
		if c.timer != nil {
			c.timer.Stop()
		}
		c.waitingSince.Store(0)
		return
	}
	c.waitingSince.Store(c.srv.since())
	switch {
	case d <= 0:
	case c.timer == nil:
		c.timer = time.AfterFunc(d, c.expire)
	default:
		c.timer.Reset(d)
	}
}

// sentAt returns when the newest response of typeURL was sent.
func (c *conn) sentAt(typeURL string) time.Time {
	for _, s := range c.sent {
		if s.typeURL == typeURL {
			return s.at
		}
	}
	return time.Time{}
}

// setSent records that a response of typeURL was sent at t, and awaits the
// client's answer.
func (c *conn) setSent(typeURL string, t time.Time) {
	for i := range c.sent {
		if c.sent[i].typeURL == typeURL {
			c.sent[i].at = t
			if c.sent[i].answered {
				c.sent[i].answered = false
				c.unanswered.Add(1)
			}
			return
		}
	}
	c.sent = append(c.sent, sentAt{typeURL: typeURL, at: t})
	c.unanswered.Add(1)
}

// answered records that the client answered (ACK or NACK, R4) the newest
// response of typeURL.
func (c *conn) answered(typeURL string) {
	for i := range c.sent {
		if c.sent[i].typeURL == typeURL && !c.sent[i].answered {
			c.sent[i].answered = true
			c.unanswered.Add(-1)
		}
	}
}

// variant is how one kind of stream reads requests and writes responses.
type variant[Req request] struct {
	name string
	// newReq returns an empty request to receive into.
	newReq func() Req
	// setType sets the type URL of a request (a per-type service's).
	setType func(Req, string)
	// newMachine returns the state machine of a new stream.
	newMachine func(machine.Config) machine.Machine[Req]
	// message returns the message that carries a response on the wire.
	message func(s *Server, r *Response) proto.Message
}

// The variants are constants in all but name: nothing modifies them.
var sotwVariant = variant[*discoveryv3.DiscoveryRequest]{
	name:       "sotw",
	newReq:     func() *discoveryv3.DiscoveryRequest { return new(discoveryv3.DiscoveryRequest) },
	setType:    func(r *discoveryv3.DiscoveryRequest, t string) { r.TypeUrl = t },
	newMachine: func(c machine.Config) machine.Machine[*discoveryv3.DiscoveryRequest] { return machine.NewSotW(c) },
	message:    func(s *Server, r *Response) proto.Message { return sotwMessage(s.frames.sotw(r), r.Nonce) },
}

var deltaVariant = variant[*discoveryv3.DeltaDiscoveryRequest]{
	name:       "delta",
	newReq:     func() *discoveryv3.DeltaDiscoveryRequest { return new(discoveryv3.DeltaDiscoveryRequest) },
	setType:    func(r *discoveryv3.DeltaDiscoveryRequest, t string) { r.TypeUrl = t },
	newMachine: func(c machine.Config) machine.Machine[*discoveryv3.DeltaDiscoveryRequest] { return machine.NewDelta(c) },
	message:    func(s *Server, r *Response) proto.Message { return deltaMessage(s.frames.delta(r), r.Nonce) },
}

// showInfo shows the stream's identity to other goroutines.
func (c *conn) showInfo() {
	info := c.info
	c.shownInfo.Store(&info)
}

// showStatus shows its machine's newest status snapshot to other goroutines:
// an atomic store of the machine's immutable snapshot, read without a lock.
func (c *conn) showStatus(st *machine.Status) { c.shownStatus.Store(st) }

// serve runs one stream until the client or the server ends it.
func serve[Req request](s *Server, ss grpc.ServerStream, v *variant[Req], fixedType, service string) (err error) {
	ctx := ss.Context()
	sess := newSession(s, ctx, v, fixedType, service)
	c := &conn{
		srv:     s,
		info:    sess.info,
		ctx:     ctx,
		in:      make(chan inbound, 1),
		netConn: s.connOf(ctx),
	}
	c.showInfo()
	if err := s.add(c); err != nil {
		return err
	}
	c.watcher = s.store.NewWatcher()
	sess.watch = c.watchType
	defer c.watcher.Close()
	if d := s.opts.firstRequestTimeout(); d > 0 {
		c.waitingSince.Store(s.since())
		c.timer = time.AfterFunc(d, c.expire)
	}
	defer func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		s.remove(c)
		switch c.cut.Load() {
		case cutSendTimeout:
			err = status.Errorf(codes.DeadlineExceeded, "send timeout: the client took none of a response for %s; its connection was closed", s.opts.sendTimeout())
		case cutShutdown:
			err = errShutdown
		}
		if c.opened.Load() && s.hooks.StreamClosed != nil {
			s.hooks.StreamClosed(c.info, err)
		}
	}()

	go func() {
		for {
			req := v.newReq()
			err := ss.RecvMsg(req)
			if err != nil {
				c.deliver(inbound{err: err})
				return
			}
			if !c.deliver(inbound{req: req}) {
				return
			}
		}
	}()

	// take applies what arrived on in, or returns the error that ends the stream.
	take := func(x inbound) error {
		if x.err == s.errNoFirstRequest {
			if sess.Opened() {
				return nil // the first request came as the timer fired
			}
			s.firstRequestTimeouts.Add(1)
			s.opts.Logger.Debug("stream ended: no first request", "stream", c.info.ID, "peer", peerOf(ctx))
		}
		if x.err != nil {
			return x.err
		}
		return receive(c, sess, x.req.(Req))
	}
	for {
		var err error
		select {
		case x := <-c.in:
			err = take(x)
		case <-c.watcher.C:
		case <-ctx.Done():
			err = status.FromContextError(ctx.Err()).Err()
		}
		// Requests first, whatever woke the handler: every request already here
		// is applied before the push (S5: only the newest state is answered), so
		// a store change never answers a subscription the client has already
		// withdrawn in a request waiting here (as Session.Step does).
		for more := err == nil; more; {
			select {
			case x := <-c.in:
				err = take(x)
				more = err == nil
			default:
				more = false
			}
		}
		if errors.Is(err, io.EOF) {
			return nil // the client closed its side: the stream ends cleanly
		}
		if err != nil {
			return err
		}
		if err := push(c, sess, ss); err != nil {
			return err
		}
	}
}

// receive applies one request to the stream's session, opening the stream on
// the first, and reports it to the hooks.
func receive[Req request](c *conn, x *Session[Req], req Req) error {
	rcv, opened, err := x.Receive(req)
	if opened {
		if x.requested != x.info.Scope {
			r := x.requested
			c.requested.Store(&r)
		}
		c.open(x)
	}
	if err != nil {
		return err
	}
	c.showStatus(x.Status())
	if opened || rcv.Kind == KindACK || rcv.Kind == KindNACK {
		c.srv.progress.signal() // the stream's standing may have changed (Applied)
	}
	c.received(rcv, x.at)
	return nil
}

// received reports a classified request to the hooks.
func (c *conn) received(rcv Received, now time.Time) {
	s := c.srv
	if s.hooks.Request != nil {
		s.hooks.Request(c.info, rcv)
	}
	switch rcv.Kind {
	case KindACK:
		c.answered(rcv.TypeURL)
		if s.hooks.ACK != nil {
			s.hooks.ACK(c.info, rcv.TypeURL, rcv.Version, now.Sub(c.sentAt(rcv.TypeURL)))
		}
	case KindNACK:
		c.answered(rcv.TypeURL)
		if s.hooks.NACK != nil {
			s.hooks.NACK(c.info, rcv.TypeURL, *rcv.NACK)
		}
	}
}

// open records that the stream's first request named its node (x.Info).
func (c *conn) open(x interface{ Info() StreamInfo }) {
	s := c.srv
	c.info = x.Info()
	c.showInfo()
	// The wait for the first request is over. waitingSince is cleared before
	// opened is set, so that expire, which reads them the other way round, never
	// takes the stream's start for a send's.
	c.waitingSince.Store(0)
	c.opened.Store(true)
	s.awaiting.Add(-1)
	if c.timer != nil {
		c.timer.Stop()
		if c.netConn == nil || s.opts.sendTimeout() <= 0 {
			c.timer = nil
		}
	}
	if s.hooks.StreamOpened != nil {
		s.hooks.StreamOpened(c.info)
	}
}

// watchType makes the stream's watcher follow a type of scope before the
// request is applied (Session.watch), so that no commit falls between reading
// the view and watching.
func (c *conn) watchType(scope, typeURL string) {
	if typeURL == "" || slices.Contains(c.watched, typeURL) {
		return
	}
	c.watch(scope, typeURL)
	if typeURL == protocol.TypeEndpoint {
		c.watch(scope, protocol.TypeCluster) // explicit empty assignments follow the clusters (P2)
	}
}

func (c *conn) watch(scope, typeURL string) {
	if !slices.Contains(c.watched, typeURL) {
		c.watched = append(c.watched, typeURL)
		c.watcher.Watch(scope, typeURL)
	}
}

// push sends whatever the client lacks at the store's current view.
func push[Req request](c *conn, x *Session[Req], ss grpc.ServerStream) error {
	if !x.Opened() {
		return nil
	}
	s := c.srv
	if err := x.Rescoped(); err != nil {
		return err
	}
	v := x.View()
	resps := x.Responses(v)
	before, after := c.shownStatus.Load(), x.Status()
	c.showStatus(after)
	if after.ViewRevision() != before.ViewRevision() {
		s.progress.signal() // it read another view: its standing may have changed (Applied)
	}
	for _, r := range resps {
		c.sending(true)
		if s.closing.Load() {
			// Shutdown came first, or saw no send in progress (stop): the
			// client may have stopped reading, and its status would wait
			// behind what gRPC still holds for it. Shutdown waits for no one.
			c.sending(false)
			c.closeConn(cutShutdown)
			return errShutdown
		}
		err := ss.SendMsg(x.Message(r))
		c.sending(false)
		if err != nil {
			return err
		}
		now := s.opts.Now()
		c.setSent(r.TypeURL, now)
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
	if err := s.checkNode(req.GetNode(), "a fetch request"); err != nil {
		return nil, err
	}
	if s.opts.Authorize != nil {
		if err := s.opts.Authorize(ctx, req.GetNode()); err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "node %q refused: %v", req.GetNode().GetId(), err)
		}
	}
	scope := s.resolveScope(s.opts.ScopeOf(req.GetNode()), req.GetNode())
	v := s.viewFor(scope, req.GetNode())
	cfg := machine.Config{Scope: scope, Node: req.GetNode(), Limits: s.opts.Limits, Caches: s.caches}
	r, err := machine.Fetch(cfg, req, s.opts.Now(), v)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if r == nil {
		return nil, status.Error(codes.Internal, "no response computed")
	}
	return sotwMessage(s.frames.sotw(r), r.Nonce), nil
}
