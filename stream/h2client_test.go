package stream_test

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client is a hostile client speaking raw HTTP/2: it opens gRPC streams and
// sends nothing on them, whatever the server announced, as no gRPC library
// would. A goroutine reads what the server sends and keeps count.
type h2Client struct {
	conn net.Conn
	fr   *http2.Framer
	// next is the ID of the next stream to open (client streams are odd).
	next uint32

	mu sync.Mutex
	// settings is the server's first SETTINGS frame; nil until it came.
	settings map[http2.SettingID]uint32
	// refused counts the streams the server reset with REFUSED_STREAM.
	refused int
	// statuses counts, by grpc-status, the streams the server ended with trailers.
	statuses map[string]int
	// messages are the grpc-message of those trailers, by stream.
	messages map[uint32]string
	// readErr is what ended reading (io.EOF once the server closed the connection).
	readErr error
	done    chan struct{}
}

func dialH2(t testing.TB, addr string) *h2Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := &h2Client{conn: conn, fr: http2.NewFramer(conn, conn), next: 1,
		statuses: map[string]int{}, messages: map[uint32]string{}, done: make(chan struct{})}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	// A connection the server refused fails these writes; read says so.
	if _, err := io.WriteString(conn, http2.ClientPreface); err == nil {
		_ = c.fr.WriteSettings()
	}
	go c.read()
	return c
}

// read counts the server's frames until the connection ends. It alone reads
// the framer; writes happen on the test's goroutine, except the SETTINGS and
// PING acknowledgements, which are written under mu.
func (c *h2Client) read() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		c.mu.Lock()
		if err != nil {
			c.readErr = err
			c.mu.Unlock()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if c.settings == nil {
					c.settings = map[http2.SettingID]uint32{}
					_ = f.ForeachSetting(func(s http2.Setting) error { c.settings[s.ID] = s.Val; return nil })
				}
				_ = c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = c.fr.WritePing(true, f.Data)
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				c.refused++
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() { // trailers, or a response of trailers only
				code, msg := "", ""
				for _, h := range f.RegularFields() {
					switch h.Name {
					case "grpc-status":
						code = h.Value
					case "grpc-message":
						msg = h.Value
					}
				}
				c.statuses[code]++
				c.messages[f.StreamID] = msg
			}
		}
		c.mu.Unlock()
	}
}

// open starts a stream on method and sends nothing on it.
func (c *h2Client) open(t testing.TB, method string) uint32 {
	t.Helper()
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", "leanxds"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		require.NoError(t, enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	id := c.next
	c.next += 2
	c.mu.Lock()
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b.Bytes(), EndHeaders: true})
	c.mu.Unlock()
	require.NoError(t, err)
	return id
}

// waitFor waits, a bounded while, until cond holds of the client's counts.
func (c *h2Client) waitFor(t testing.TB, what string, cond func(c *h2Client) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		ok := cond(c)
		c.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("timed out waiting for %s: refused %d, statuses %v, read error %v", what, c.refused, c.statuses, c.readErr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
