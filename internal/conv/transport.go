package conv

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// transport is what a SotW or Delta drives: one stream to the server, carrying
// requests one way and responses of type R the other. Two kinds stand behind
// it: pipe, a gRPC stream whose waits are bounded by timeouts, and memStream, the
// server's state machine driven in memory, where every wait is instant and exact.
type transport[R proto.Message] interface {
	// send puts a request on the stream. A stream the server has already ended
	// is not a failure here: the status it ended with is what the next wait
	// reports.
	send(req proto.Message)
	// receive returns the next response, failing the test if none comes or the
	// stream ends.
	receive() R
	// nothing fails the test if a response comes or the stream ends.
	nothing()
	// endsWith waits for the stream to end with code and returns its status
	// error (nil for codes.OK, a clean end).
	endsWith(code codes.Code) error
	// closeSend half-closes the stream: the client will send no more requests.
	closeSend()
	// cancel breaks the stream as a lost connection does: what the server sent
	// that the test has not received is lost, and every later wait reports the
	// stream ended with Canceled.
	cancel()
}
