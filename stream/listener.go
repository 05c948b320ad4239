package stream

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/peer"
)

// Listener returns lis as the server should serve it: at most
// Options.MaxConns connections at once (one more is closed as soon as it is
// accepted, and its client sees the connection fail and retries).
//
// grpc-go sets TCP_USER_TIMEOUT (its keepalive Timeout) only on the
// *net.TCPConn a listener returns, which a wrapped connection is not: set it on
// lis's socket instead (accepted sockets inherit it on Linux), as leanxds serve
// does.
func (s *Server) Listener(lis net.Listener) net.Listener {
	return &listener{Listener: lis, s: s}
}

type listener struct {
	net.Listener
	s *Server
}

// Accept returns the next connection the limit admits.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := l.s.admit(c); tc != nil {
			return tc, nil
		}
		_ = c.Close()
	}
}

// connSet is what the server knows of the connections Listener accepted.
type connSet struct {
	mu sync.Mutex
	// open counts the connections accepted and not closed yet.
	open int
	// full is set from a refusal until a connection closes, so that the log
	// says once that the limit is reached, not once a refusal.
	full bool
	// refused counts the connections closed at accept by the limit.
	refused atomic.Uint64
}

// trackedConn is a connection Listener accepted.
type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

// Close closes the connection; the first call also forgets it.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.s.release(c) })
	return err
}

// admit records c, or returns nil when MaxConns connections are open.
func (s *Server) admit(c net.Conn) *trackedConn {
	cs := &s.conns
	limit := s.opts.maxConns()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if limit > 0 && cs.open >= limit {
		cs.refused.Add(1)
		if !cs.full {
			cs.full = true
			s.opts.Logger.Warn("connection limit reached: new connections are closed until one ends", "max_conns", limit)
		}
		return nil
	}
	cs.open++
	return &trackedConn{Conn: c, s: s}
}

// release forgets a closed connection.
func (s *Server) release(c *trackedConn) {
	cs := &s.conns
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.open--
	cs.full = false
}

// peerOf returns the remote address of a stream's client.
func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
