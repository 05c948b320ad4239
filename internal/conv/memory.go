package conv

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// stepper is one stream's state machine as the in-memory transport drives it.
type stepper[R proto.Message] interface {
	// receive applies one request as the server's handler would. A non-nil
	// error is the gRPC status the stream ends with.
	receive(req proto.Message) error
	// responses returns what the machine sends now, at the store's current view,
	// as wire messages; none when the client lacks nothing.
	responses() []R
	// end tells the machine the stream is over (status pages stop listing it).
	end()
}

// memStream is the in-memory transport under SotW and Delta: the server's state
// machine stepped by the test goroutine itself. A request is applied when it is
// sent; the machine is asked what it sends only when the test waits for it, so
// every response is computed at the store's view of that moment. With no
// goroutine and no clock in between, every wait is instant and exact:
// ExpectNothing holds exactly when the machine has nothing to send, and
// ExpectResponse fails at once when it has.
type memStream[R proto.Message] struct {
	t    testing.TB
	name string
	m    stepper[R]
	// describe renders a response in failure messages.
	describe func(R) string
	// queue holds responses the machine has sent that the test has not received
	// yet, oldest first.
	queue []R
	// ended is the error that ended the stream (io.EOF for a clean end), nil
	// while it is open.
	ended error
	// last describes the last response received, for failure messages.
	last string
}

func newMemStream[R proto.Message](t testing.TB, name string, m stepper[R], describe func(R) string) *memStream[R] {
	s := &memStream[R]{t: t, name: name, m: m, describe: describe}
	t.Cleanup(func() { s.end(status.Error(codes.Canceled, "conv: the test ended")) })
	return s
}

func (s *memStream[R]) send(req proto.Message) {
	if s.ended != nil {
		return
	}
	// The server decodes its own copy of what crosses the wire: the test may
	// reuse what it sent.
	if err := s.m.receive(proto.Clone(req)); err != nil {
		s.end(err)
	}
}

// end ends the stream with err, once.
func (s *memStream[R]) end(err error) {
	if s.ended == nil {
		s.ended = err
		s.m.end()
	}
}

// pending returns what the machine has sent that the test has not received yet,
// asking the machine first when nothing is queued and the stream is open.
func (s *memStream[R]) pending() []R {
	if len(s.queue) == 0 && s.ended == nil {
		s.queue = s.m.responses()
	}
	return s.queue
}

func (s *memStream[R]) receive() R {
	s.t.Helper()
	q := s.pending()
	if len(q) == 0 {
		if s.ended != nil {
			s.t.Fatalf("conv: %s: stream ended while a response was expected: %v%s", s.name, s.ended, s.lastSeen())
		}
		s.t.Fatalf("conv: %s: no response: the server has nothing to send%s", s.name, s.lastSeen())
	}
	r := q[0]
	s.queue = q[1:]
	s.last = s.describe(r)
	return r
}

func (s *memStream[R]) nothing() {
	s.t.Helper()
	if q := s.pending(); len(q) > 0 {
		s.t.Fatalf("conv: %s: expected no response, got %s", s.name, s.describe(q[0]))
	}
	if s.ended != nil {
		s.t.Fatalf("conv: %s: expected silence, the stream ended: %v", s.name, s.ended)
	}
}

func (s *memStream[R]) endsWith(code codes.Code) error {
	s.t.Helper()
	if q := s.pending(); len(q) > 0 {
		s.t.Fatalf("conv: %s: want the stream ended with %s, got response %s", s.name, code, s.describe(q[0]))
	}
	if s.ended == nil {
		s.t.Fatalf("conv: %s: stream still open, want it ended with %s%s", s.name, code, s.lastSeen())
	}
	err := s.ended
	if errors.Is(err, io.EOF) {
		err = nil // the server returned OK
	}
	if got := status.Code(err); got != code {
		s.t.Fatalf("conv: %s: stream ended with %s (%v), want %s", s.name, got, err, code)
	}
	return err
}

// closeSend ends the stream cleanly, as the server's handler does when the
// client closes its side: responses already sent can still be received.
func (s *memStream[R]) closeSend() { s.end(io.EOF) }

func (s *memStream[R]) cancel() {
	s.queue = nil
	s.end(status.Error(codes.Canceled, "conv: the client cancelled the stream"))
}

// lastSeen is the failure-message suffix naming the last response received.
func (s *memStream[R]) lastSeen() string {
	if s.last == "" {
		return " (no response received yet)"
	}
	return fmt.Sprintf(" (last response: %s)", s.last)
}
