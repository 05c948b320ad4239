package conv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// pipe is the gRPC transport under SotW and Delta: one bidirectional gRPC stream,
// and a receive goroutine that hands what arrives to the test goroutine through a
// channel, so that every wait can be bounded.
type pipe[R proto.Message] struct {
	t    testing.TB
	opts options
	// name names the stream in failure messages ("ADS", "delta CDS").
	name string
	cs   grpc.ClientStream
	// abort cancels the stream (cancel).
	abort context.CancelFunc
	// events carries each response, then the error that ended the stream.
	events <-chan event[R]
	// describe renders a response in failure messages.
	describe func(R) string
	// ended is the error that ended the stream once the test has seen it (io.EOF
	// for a clean end); every later wait reports it at once.
	ended error
	// last describes the last response received, for failure messages.
	last string
}

// event is one thing the receive goroutine saw: a response, or the error that
// ended the stream.
type event[R proto.Message] struct {
	msg R
	err error
}

// openPipe opens a bidirectional stream on method and starts its receive
// goroutine. The stream is cancelled, and the goroutine waited for, when the test
// ends.
func openPipe[R proto.Message](t testing.TB, cc grpc.ClientConnInterface, name, method string, newMsg func() R, describe func(R) string, opts []Option) *pipe[R] {
	t.Helper()
	o := newOptions(opts)
	ctx, cancel := context.WithCancel(t.Context())
	desc := &grpc.StreamDesc{StreamName: method, ServerStreams: true, ClientStreams: true}
	cs, err := cc.NewStream(ctx, desc, method)
	if err != nil {
		cancel()
		t.Fatalf("conv: %s: open %s: %v", name, method, err)
	}
	events := make(chan event[R])
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m := newMsg()
			err := cs.RecvMsg(m)
			select {
			case events <- event[R]{msg: m, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(o.timeout):
			t.Errorf("conv: %s: receive goroutine still running %s after the stream was cancelled", name, o.timeout)
		}
	})
	return &pipe[R]{t: t, opts: o, name: name, cs: cs, abort: cancel, events: events, describe: describe}
}

// send puts m on the wire. A stream the server has already ended is not a failure
// here: the status it ended with is what the next wait reports.
func (p *pipe[R]) send(m proto.Message) {
	p.t.Helper()
	err := p.cs.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		p.t.Fatalf("conv: %s: send: %v", p.name, err)
	}
}

// next waits up to d for what the stream does next. ok is false when nothing
// happened within d.
func (p *pipe[R]) next(d time.Duration) (ev event[R], ok bool) {
	if p.ended != nil {
		return event[R]{err: p.ended}, true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev = <-p.events:
		if ev.err != nil {
			p.ended = ev.err
		} else {
			p.last = p.describe(ev.msg)
		}
		return ev, true
	case <-timer.C:
		return ev, false
	}
}

// receive waits for the next response, failing the test on timeout or on the end
// of the stream.
func (p *pipe[R]) receive() R {
	p.t.Helper()
	ev, ok := p.next(p.opts.timeout)
	switch {
	case !ok:
		p.t.Fatalf("conv: %s: no response within %s%s", p.name, p.opts.timeout, p.lastSeen())
	case ev.err != nil:
		p.t.Fatalf("conv: %s: stream ended while a response was expected: %v%s", p.name, ev.err, p.lastSeen())
	}
	return ev.msg
}

// nothing fails the test if anything arrives within the quiet window.
func (p *pipe[R]) nothing() {
	p.t.Helper()
	ev, ok := p.next(p.opts.quiet)
	switch {
	case !ok:
		return
	case ev.err != nil:
		p.t.Fatalf("conv: %s: expected silence for %s, the stream ended: %v", p.name, p.opts.quiet, ev.err)
	default:
		p.t.Fatalf("conv: %s: expected no response within %s, got %s", p.name, p.opts.quiet, p.describe(ev.msg))
	}
}

// endsWith waits for the stream to end with code and returns its status error (nil
// for codes.OK, a clean end).
func (p *pipe[R]) endsWith(code codes.Code) error {
	p.t.Helper()
	ev, ok := p.next(p.opts.timeout)
	switch {
	case !ok:
		p.t.Fatalf("conv: %s: stream still open after %s, want it ended with %s%s", p.name, p.opts.timeout, code, p.lastSeen())
	case ev.err == nil:
		p.t.Fatalf("conv: %s: want the stream ended with %s, got response %s", p.name, code, p.describe(ev.msg))
	}
	err := ev.err
	if errors.Is(err, io.EOF) {
		err = nil // the server returned OK
	}
	if got := status.Code(err); got != code {
		p.t.Fatalf("conv: %s: stream ended with %s (%v), want %s", p.name, got, err, code)
	}
	return err
}

// closeSend half-closes the stream: the client will send no more requests.
func (p *pipe[R]) closeSend() {
	p.t.Helper()
	if err := p.cs.CloseSend(); err != nil {
		p.t.Fatalf("conv: %s: close: %v", p.name, err)
	}
}

// cancel cancels the stream as a broken connection does: what the server sent
// that the test has not received yet is lost, and every later wait reports the
// stream ended with Canceled.
func (p *pipe[R]) cancel() {
	p.abort()
	if p.ended == nil {
		p.ended = status.Error(codes.Canceled, "conv: the client cancelled the stream")
	}
}

// lastSeen is the failure-message suffix naming the last response received.
func (p *pipe[R]) lastSeen() string {
	if p.last == "" {
		return " (no response received yet)"
	}
	return fmt.Sprintf(" (last response: %s)", p.last)
}
