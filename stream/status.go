package stream

import (
	"time"

	"github.com/leanxds/leanxds/stream/machine"
)

// StreamStatus is a connected stream as the server sees it.
type StreamStatus struct {
	StreamInfo
	// Types holds one entry per type URL the client requested, in push order.
	Types []TypeStatus
}

// shown is what a stream shows of itself to other goroutines (Server.Streams,
// AwaitingFirstRequest, the timer): its identity and the status snapshot of its
// machine's newest step. Both are immutable; the handler publishes a new shown
// when either changes.
type shown struct {
	info   StreamInfo
	status *machine.Status
}

// status returns the stream's published status; reading it takes no lock.
func (c *conn) status() StreamStatus {
	sh := c.shown.Load()
	return StreamStatus{StreamInfo: sh.info, Types: sh.status.Types()}
}

// sentAt remembers when the newest response of a type was sent, for the ACK
// latency hook, and whether the client has answered it.
type sentAt struct {
	typeURL  string
	at       time.Time
	answered bool
}
