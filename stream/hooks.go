package stream

import (
	"context"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/protocol"
)

// Hooks are called as streams come and go and as requests and responses pass, for
// metrics and logs. Every field may be nil. They run on the stream's goroutine:
// keep them quick and never block.
type Hooks struct {
	// StreamOpened runs once the first request named the node and its scope.
	StreamOpened func(StreamInfo)
	// StreamClosed runs when the stream ends; err is nil for a clean end.
	StreamClosed func(info StreamInfo, err error)
	// Request runs for every request, with what Receive made of it.
	Request func(info StreamInfo, r Received)
	// Response runs after a response was handed to the transport. sinceCommit is
	// the time since the store published the content (push latency).
	Response func(info StreamInfo, r *Response, sinceCommit time.Duration)
	// ACK runs when a client accepts a response; latency is the time since it was sent.
	ACK func(info StreamInfo, typeURL, version string, latency time.Duration)
	// NACK runs when a client rejects a response.
	NACK func(info StreamInfo, typeURL string, nack NACK)
}

// StreamInfo identifies a stream in hooks and status.
type StreamInfo struct {
	// ID is unique among the server's streams.
	ID uint64
	// NodeID and Cluster come from the node of the first request.
	NodeID  string
	Cluster string
	// Node is what the stream keeps of the node of its first request (R2), for
	// what NodeID and Cluster do not tell: its metadata (CSDS node matchers),
	// locality and user agent. The rest of the node (extensions, client
	// features, listening addresses) is not kept. It is shared: do not modify it.
	Node *corev3.Node
	// Scope is the scope the stream is served.
	Scope string
	// Variant is "sotw" or "delta".
	Variant string
	// Service is the gRPC service: "ads" or a per-type service's short name ("cds").
	Service string
	// ConnectedAt is when the stream opened.
	ConnectedAt time.Time
}

// logHooks logs stream events: debug for the routine ones, warn for NACKs, which
// are what an operator must look at.
func logHooks(l *slog.Logger) Hooks {
	attrs := func(i StreamInfo) slog.Attr {
		return slog.Group("stream", "id", i.ID, "node", i.NodeID, "scope", i.Scope, "variant", i.Variant)
	}
	// debug is checked before building a record's attributes, which would
	// otherwise cost allocations on every request and response of every stream.
	debug := func() bool { return l.Enabled(context.Background(), slog.LevelDebug) }
	return Hooks{
		StreamOpened: func(i StreamInfo) {
			if !debug() {
				return
			}
			l.LogAttrs(context.Background(), slog.LevelDebug, "stream opened", attrs(i))
		},
		StreamClosed: func(i StreamInfo, err error) {
			if !debug() {
				return
			}
			l.LogAttrs(context.Background(), slog.LevelDebug, "stream closed", attrs(i), slog.Any("err", err))
		},
		Request: func(i StreamInfo, r Received) {
			if !debug() {
				return
			}
			l.LogAttrs(context.Background(), slog.LevelDebug, "request", attrs(i),
				slog.String("type", protocol.Short(r.TypeURL)), slog.String("kind", r.Kind.String()))
		},
		Response: func(i StreamInfo, r *Response, _ time.Duration) {
			if !debug() {
				return
			}
			l.LogAttrs(context.Background(), slog.LevelDebug, "response", attrs(i),
				slog.String("type", protocol.Short(r.TypeURL)), slog.String("version", r.Version),
				slog.String("nonce", r.Nonce), slog.Int("resources", len(r.Resources)), slog.Int("removed", len(r.Removed)))
		},
		NACK: func(i StreamInfo, typeURL string, n NACK) {
			l.LogAttrs(context.Background(), slog.LevelWarn, "NACK", attrs(i),
				slog.String("type", protocol.Short(typeURL)), slog.String("rejected_version", n.RejectedVersion),
				slog.String("held_version", n.Version), slog.String("error", n.Message))
		},
	}
}

// join runs both hooks, a first.
func (a Hooks) join(b Hooks) Hooks {
	return Hooks{
		StreamOpened: both1(a.StreamOpened, b.StreamOpened),
		StreamClosed: both2(a.StreamClosed, b.StreamClosed),
		Request:      both2(a.Request, b.Request),
		Response:     both3(a.Response, b.Response),
		ACK:          both4(a.ACK, b.ACK),
		NACK:         both3(a.NACK, b.NACK),
	}
}

func both1[A any](f, g func(A)) func(A) {
	if f == nil || g == nil {
		return nilOr1(f, g)
	}
	return func(a A) { f(a); g(a) }
}

func nilOr1[A any](f, g func(A)) func(A) {
	if f != nil {
		return f
	}
	return g
}

func both2[A, B any](f, g func(A, B)) func(A, B) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

func both3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A, b B, c C) { f(a, b, c); g(a, b, c) }
}

func both4[A, B, C, D any](f, g func(A, B, C, D)) func(A, B, C, D) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A, b B, c C, d D) { f(a, b, c, d); g(a, b, c, d) }
}
