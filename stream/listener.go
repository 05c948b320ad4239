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
// accepted, and its client sees the connection fail and retries), each known to
// the server so that Options.SendTimeout and Shutdown can close the connection
// of a stream blocked sending to a client that stopped reading.
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

// connSet is what the server knows of the connections Listener accepted: how
// many are open, and which one a stream's peer address names.
type connSet struct {
	mu sync.Mutex
	// open counts the connections accepted and not closed yet.
	open int
	// byAddr holds the TCP ones by remote address, which names one connection
	// at a time. Other connections (Unix sockets, whose peers are unnamed) are
	// only counted: their streams cannot be cut by a send timeout.
	byAddr map[string]*trackedConn
	// full is set from a refusal until a connection closes, so that the log
	// says once that the limit is reached, not once a refusal.
	full bool
	// refused counts the connections closed at accept by the limit.
	refused atomic.Uint64
}

// trackedConn is a connection Listener accepted.
type trackedConn struct {
	net.Conn
	s *Server
	// key is its remote address, as streams' peers name it; "" when it is
	// not in connSet.byAddr.
	key  string
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
	tc := &trackedConn{Conn: c, s: s}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if key := a.String(); cs.byAddr[key] == nil {
			tc.key = key
			cs.byAddr[key] = tc
		}
	}
	return tc
}

// release forgets a closed connection.
func (s *Server) release(c *trackedConn) {
	cs := &s.conns
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.open--
	cs.full = false
	if c.key != "" {
		delete(cs.byAddr, c.key)
	}
}

// connOf returns the connection a stream's context comes from, if Listener
// accepted it.
func (s *Server) connOf(ctx context.Context) *trackedConn {
	key := peerOf(ctx)
	if key == "" {
		return nil
	}
	cs := &s.conns
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.byAddr[key]
}

// peerOf returns the remote address of a stream's client.
func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
