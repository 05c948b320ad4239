package conv

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/protocol"
)

// SotW is the client side of one state-of-the-world stream, aggregated (ADS) or
// per type. Create it with ADS or Typed; drive it from one test goroutine.
type SotW struct {
	t testing.TB
	// name names the stream in failure messages ("ADS", "delta CDS").
	name string
	// tr carries requests and responses: gRPC or the machine in memory.
	tr transport[*discoveryv3.DiscoveryResponse]
	// sent counts the requests sent; only the first carries the Node (R2).
	sent int
	node *corev3.Node
	// seen holds every nonce received on the stream, to catch a repeat (R1).
	seen map[string]bool
	// last is, per type URL, the last response received: what ACK and NACK answer,
	// and whose nonce Request echoes.
	last map[string]*Response
	// lastType is the type URL of the last response received, the type ACK and
	// NACK answer by default.
	lastType string
	// acked is, per type URL, the last version ACKed: the version_info of later
	// requests and of NACKs (R5).
	acked map[string]string
	// subscribed is, per type URL, the resource_names of the last request sent:
	// the subscription as the server knows it, which every SotW request repeats.
	subscribed map[string][]string
}

// ADS opens an aggregated state-of-the-world stream
// (AggregatedDiscoveryService.StreamAggregatedResources) on cc for a client
// identifying as node. The stream is cancelled when the test ends.
func ADS(t testing.TB, cc grpc.ClientConnInterface, node *corev3.Node, opts ...Option) *SotW {
	t.Helper()
	return openSotW(t, cc, "ADS", adsMethod, node, opts)
}

// Typed opens the per-type state-of-the-world stream that serves typeURL (LDS
// StreamListeners, CDS StreamClusters, ...). It fails the test for a type with no
// such service.
func Typed(t testing.TB, cc grpc.ClientConnInterface, typeURL string, node *corev3.Node, opts ...Option) *SotW {
	t.Helper()
	method, ok := sotwMethod(typeURL)
	if !ok {
		t.Fatalf("conv: no state-of-the-world service for type %s", typeURL)
	}
	return openSotW(t, cc, protocol.Short(typeURL), method, node, opts)
}

func openSotW(t testing.TB, cc grpc.ClientConnInterface, name, method string, node *corev3.Node, opts []Option) *SotW {
	t.Helper()
	newMsg := func() *discoveryv3.DiscoveryResponse { return new(discoveryv3.DiscoveryResponse) }
	return newSotW(t, name, openPipe(t, cc, name, method, newMsg, describeSotW, opts), node)
}

// newSotW returns the client of a stream carried by tr.
func newSotW(t testing.TB, name string, tr transport[*discoveryv3.DiscoveryResponse], node *corev3.Node) *SotW {
	return &SotW{
		t:          t,
		name:       name,
		tr:         tr,
		node:       node,
		seen:       make(map[string]bool),
		last:       make(map[string]*Response),
		acked:      make(map[string]string),
		subscribed: make(map[string][]string),
	}
}

// describeSotW renders a response in failure messages.
func describeSotW(m *discoveryv3.DiscoveryResponse) string { return (&Response{m}).String() }

// Request subscribes to exactly names of typeURL: SotW requests carry the whole
// new subscription, so a name left out is unsubscribed (S4) and no name at all is
// a wildcard on a type's first request (R11). Like a real client, it sends the
// last version ACKed and the nonce of the last response received for the type.
func (c *SotW) Request(typeURL string, names ...string) *SotW {
	c.t.Helper()
	c.sendTracked(&discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		ResourceNames: slices.Clone(names),
		VersionInfo:   c.acked[typeURL],
		ResponseNonce: c.lastNonce(typeURL),
	})
	return c
}

// Send puts req on the wire exactly as given, Node included or not, for malformed
// input and stale nonces. Its resource_names become the subscription that ACK and
// NACK repeat, as they are what the server now holds.
func (c *SotW) Send(req *discoveryv3.DiscoveryRequest) *SotW {
	c.t.Helper()
	c.subscribed[req.GetTypeUrl()] = slices.Clone(req.GetResourceNames())
	c.tr.send(req)
	c.sent++
	return c
}

// ACK accepts the last response received of typeURL (default: the type of the last
// response received): it echoes that response's version and nonce with the
// current subscription (R4).
func (c *SotW) ACK(typeURL ...string) *SotW {
	c.t.Helper()
	r := c.answered("ACK", typeURL)
	c.acked[r.GetTypeUrl()] = r.Version()
	c.sendTracked(&discoveryv3.DiscoveryRequest{
		TypeUrl:       r.GetTypeUrl(),
		ResourceNames: c.subscribed[r.GetTypeUrl()],
		VersionInfo:   r.Version(),
		ResponseNonce: r.Nonce(),
	})
	return c
}

// NACK rejects the last response received of typeURL (default: the type of the
// last response received) with message: it echoes that response's nonce with an
// error_detail (R4) and the last version ACKed, not the rejected one (R5).
func (c *SotW) NACK(message string, typeURL ...string) *SotW {
	c.t.Helper()
	r := c.answered("NACK", typeURL)
	c.sendTracked(&discoveryv3.DiscoveryRequest{
		TypeUrl:       r.GetTypeUrl(),
		ResourceNames: c.subscribed[r.GetTypeUrl()],
		VersionInfo:   c.acked[r.GetTypeUrl()],
		ResponseNonce: r.Nonce(),
		ErrorDetail:   &statuspb.Status{Code: int32(codes.InvalidArgument), Message: message},
	})
	return c
}

// ExpectResponse waits for the next response, of any type, and checks it against
// the stream rules (R1, R13) and then against ms. It fails the test, showing what
// arrived, on timeout, on the end of the stream or on a failed check. The response
// becomes the last of its type, the one ACK and NACK answer.
func (c *SotW) ExpectResponse(ms ...Match) *Response {
	c.t.Helper()
	r := &Response{c.tr.receive()}
	if err := checkResponse(c.seen, r); err != nil {
		c.t.Fatalf("conv: %s: response %s breaks the protocol: %v", c.name, r, err)
	}
	c.last[r.GetTypeUrl()] = r
	c.lastType = r.GetTypeUrl()
	if err := matchAll(r, ms); err != nil {
		c.t.Fatalf("conv: %s: unexpected response %s: %v", c.name, r, err)
	}
	return r
}

// ExpectNothing fails the test if a response arrives, or the stream ends, within
// the quiet window (WithQuiet).
func (c *SotW) ExpectNothing() {
	c.t.Helper()
	c.tr.nothing()
}

// ExpectError waits for the stream to end with the gRPC status code and returns
// the status error so the caller can check its message; for codes.OK, a clean end,
// it returns nil. Anything else fails the test.
func (c *SotW) ExpectError(code codes.Code) error {
	c.t.Helper()
	return c.tr.endsWith(code)
}

// Close half-closes the stream (CloseSend): the client sends no more requests.
func (c *SotW) Close() {
	c.t.Helper()
	c.tr.closeSend()
}

// Cancel breaks the stream from the client's side, as a lost connection does:
// responses on their way are never received, and the server sees the stream
// cancelled. Send nothing on it afterwards; open a new stream to reconnect.
func (c *SotW) Cancel() {
	c.t.Helper()
	c.tr.cancel()
}

// sendTracked sends a request built by Request, ACK or NACK: the Node goes in the
// first request of the stream only (R2).
func (c *SotW) sendTracked(req *discoveryv3.DiscoveryRequest) {
	c.t.Helper()
	if c.sent == 0 {
		req.Node = c.node
	}
	c.subscribed[req.GetTypeUrl()] = req.GetResourceNames()
	c.tr.send(req)
	c.sent++
}

// answered returns the response an ACK or NACK answers: the last one of the given
// type, or of the type of the last response received.
func (c *SotW) answered(verb string, typeURL []string) *Response {
	c.t.Helper()
	u := c.lastType
	switch len(typeURL) {
	case 0:
	case 1:
		u = typeURL[0]
	default:
		c.t.Fatalf("conv: %s: %s of %d types; answer one type at a time", c.name, verb, len(typeURL))
	}
	r := c.last[u]
	if r == nil {
		if u == "" {
			c.t.Fatalf("conv: %s: %s before any response was received", c.name, verb)
		}
		c.t.Fatalf("conv: %s: %s of %s, which has had no response", c.name, verb, protocol.Short(u))
	}
	return r
}

// lastNonce is the nonce of the last response received of typeURL, "" if none.
func (c *SotW) lastNonce(typeURL string) string {
	if r := c.last[typeURL]; r != nil {
		return r.Nonce()
	}
	return ""
}
