package conv

import (
	"maps"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/protocol"
)

// Delta is the client side of one incremental (delta) stream, aggregated or per
// type. Create it with DeltaADS or DeltaTyped; drive it from one test goroutine.
type Delta struct {
	t testing.TB
	// name names the stream in failure messages ("ADS", "delta CDS").
	name string
	// tr carries requests and responses: gRPC or the machine in memory.
	tr transport[*discoveryv3.DeltaDiscoveryResponse]
	// sent counts the requests sent; only the first carries the Node (R2).
	sent int
	node *corev3.Node
	// seen holds every nonce received on the stream, to catch a repeat (D1, R1).
	seen map[string]bool
	// last is, per type URL, the last response received: what ACK and NACK answer.
	last map[string]*DeltaResponse
	// lastType is the type URL of the last response received, the type ACK and
	// NACK answer by default.
	lastType string
}

// DeltaADS opens an aggregated incremental stream
// (AggregatedDiscoveryService.DeltaAggregatedResources) on cc for a client
// identifying as node. The stream is cancelled when the test ends.
func DeltaADS(t testing.TB, cc grpc.ClientConnInterface, node *corev3.Node, opts ...Option) *Delta {
	t.Helper()
	return openDelta(t, cc, "delta ADS", deltaADSMethod, node, opts)
}

// DeltaTyped opens the per-type incremental stream that serves typeURL (LDS
// DeltaListeners, VHDS DeltaVirtualHosts, LEDS DeltaLocalityEndpoints, ...). It
// fails the test for a type with no such service.
func DeltaTyped(t testing.TB, cc grpc.ClientConnInterface, typeURL string, node *corev3.Node, opts ...Option) *Delta {
	t.Helper()
	method, ok := deltaMethod(typeURL)
	if !ok {
		t.Fatalf("conv: no incremental service for type %s", typeURL)
	}
	return openDelta(t, cc, "delta "+protocol.Short(typeURL), method, node, opts)
}

func openDelta(t testing.TB, cc grpc.ClientConnInterface, name, method string, node *corev3.Node, opts []Option) *Delta {
	t.Helper()
	newMsg := func() *discoveryv3.DeltaDiscoveryResponse { return new(discoveryv3.DeltaDiscoveryResponse) }
	return newDelta(t, name, openPipe(t, cc, name, method, newMsg, describeDelta, opts), node)
}

// newDelta returns the client of a stream carried by tr.
func newDelta(t testing.TB, name string, tr transport[*discoveryv3.DeltaDiscoveryResponse], node *corev3.Node) *Delta {
	return &Delta{
		t:    t,
		name: name,
		tr:   tr,
		node: node,
		seen: make(map[string]bool),
		last: make(map[string]*DeltaResponse),
	}
}

// describeDelta renders a response in failure messages.
func describeDelta(m *discoveryv3.DeltaDiscoveryResponse) string { return (&DeltaResponse{m}).String() }

// Subscribe adds names to the subscription of typeURL (resource_names_subscribe).
// "*" subscribes to the wildcard; no names on a type's first request is the legacy
// wildcard (D4).
func (c *Delta) Subscribe(typeURL string, names ...string) *Delta {
	c.t.Helper()
	c.sendTracked(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                typeURL,
		ResourceNamesSubscribe: slices.Clone(names),
	})
	return c
}

// Unsubscribe removes names from the subscription of typeURL
// (resource_names_unsubscribe).
func (c *Delta) Unsubscribe(typeURL string, names ...string) *Delta {
	c.t.Helper()
	c.sendTracked(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                  typeURL,
		ResourceNamesUnsubscribe: slices.Clone(names),
	})
	return c
}

// InitialVersions sends the first request of typeURL on a reconnected stream: the
// resources the client already holds, at their versions (initial_resource_versions,
// D3), and the names it subscribes to.
func (c *Delta) InitialVersions(typeURL string, versions map[string]string, subscribe ...string) *Delta {
	c.t.Helper()
	c.sendTracked(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                 typeURL,
		InitialResourceVersions: maps.Clone(versions),
		ResourceNamesSubscribe:  slices.Clone(subscribe),
	})
	return c
}

// Send puts req on the wire exactly as given, Node included or not, for malformed
// input and stale nonces.
func (c *Delta) Send(req *discoveryv3.DeltaDiscoveryRequest) *Delta {
	c.t.Helper()
	c.tr.send(req)
	c.sent++
	return c
}

// ACK accepts the last response received of typeURL (default: the type of the last
// response received) by echoing its nonce (D1).
func (c *Delta) ACK(typeURL ...string) *Delta {
	c.t.Helper()
	r := c.answered("ACK", typeURL)
	c.sendTracked(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:       r.GetTypeUrl(),
		ResponseNonce: r.GetNonce(),
	})
	return c
}

// NACK rejects the last response received of typeURL (default: the type of the
// last response received): it echoes its nonce with an error_detail carrying
// message (D1).
func (c *Delta) NACK(message string, typeURL ...string) *Delta {
	c.t.Helper()
	r := c.answered("NACK", typeURL)
	c.sendTracked(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:       r.GetTypeUrl(),
		ResponseNonce: r.GetNonce(),
		ErrorDetail:   &statuspb.Status{Code: int32(codes.InvalidArgument), Message: message},
	})
	return c
}

// ExpectResponse waits for the next response, of any type, and checks it against
// the stream rules (D1, R13) and then against ms. It fails the test, showing what
// arrived, on timeout, on the end of the stream or on a failed check. The response
// becomes the last of its type, the one ACK and NACK answer.
func (c *Delta) ExpectResponse(ms ...DeltaMatch) *DeltaResponse {
	c.t.Helper()
	r := &DeltaResponse{c.tr.receive()}
	if err := checkDeltaResponse(c.seen, r); err != nil {
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
func (c *Delta) ExpectNothing() {
	c.t.Helper()
	c.tr.nothing()
}

// ExpectError waits for the stream to end with the gRPC status code and returns
// the status error so the caller can check its message; for codes.OK, a clean end,
// it returns nil. Anything else fails the test.
func (c *Delta) ExpectError(code codes.Code) error {
	c.t.Helper()
	return c.tr.endsWith(code)
}

// Close half-closes the stream (CloseSend): the client sends no more requests.
func (c *Delta) Close() {
	c.t.Helper()
	c.tr.closeSend()
}

// Cancel breaks the stream from the client's side, as a lost connection does:
// responses on their way are never received, and the server sees the stream
// cancelled. Send nothing on it afterwards; open a new stream to reconnect.
func (c *Delta) Cancel() {
	c.t.Helper()
	c.tr.cancel()
}

// sendTracked sends a request built by the helpers: the Node goes in the first
// request of the stream only (R2).
func (c *Delta) sendTracked(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if c.sent == 0 {
		req.Node = c.node
	}
	c.tr.send(req)
	c.sent++
}

// answered returns the response an ACK or NACK answers: the last one of the given
// type, or of the type of the last response received.
func (c *Delta) answered(verb string, typeURL []string) *DeltaResponse {
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
