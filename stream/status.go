package stream

import (
	"time"
)

// StreamStatus is a connected stream as the server sees it.
type StreamStatus struct {
	StreamInfo
	// Types holds one entry per type URL the client requested, in push order.
	Types []TypeStatus
}

// status returns the stream's published status; reading it takes no lock.
func (c *conn) status() StreamStatus {
	return StreamStatus{StreamInfo: *c.shownInfo.Load(), Types: c.shownStatus.Load().Types()}
}

// sentAt remembers when the newest response of a type was sent, for the ACK
// latency hook, and whether the client has answered it.
type sentAt struct {
	typeURL  string
	at       time.Time
	answered bool
}
