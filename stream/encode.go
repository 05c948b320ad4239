package stream

import (
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"unsafe"
	"weak"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/store"
)

// Encode once
//
// A resource is encoded once, when it is committed (store.Entry.Body). A response
// is assembled from those bytes without decoding or re-encoding anything: the
// fields every stream sending the same content shares (version_info, resources,
// type_url) are written once into a frame kept in a small cache, and each stream
// sends a DiscoveryResponse whose only known field is its own nonce, with the
// shared frame attached as the message's unknown fields. Protobuf parsers accept
// fields in any order, so on the wire this is an ordinary DiscoveryResponse.
//
// With grpc-go's default codec, marshalling such a message copies the shared
// frame once per stream (a memcpy, no encoding). With ServerOption's codec the
// frame is handed to the transport as it is, without a copy.

// DiscoveryResponse field numbers.
const (
	fieldVersionInfo = 1
	fieldResources   = 2
	fieldTypeURL     = 4
	// fieldNonce = 5 is the per-stream part.
	fieldControlPlane = 6
)

// Any field numbers.
const (
	anyTypeURL = 1
	anyValue   = 2
)

// encodeSotW writes every field of a SotW DiscoveryResponse but its nonce.
func encodeSotW(r *Response) []byte {
	size := protowire.SizeTag(fieldVersionInfo) + protowire.SizeBytes(len(r.Version)) +
		protowire.SizeTag(fieldTypeURL) + protowire.SizeBytes(len(r.TypeURL))
	for _, e := range r.Resources {
		size += protowire.SizeTag(fieldResources) + protowire.SizeBytes(anySize(e))
	}
	b := make([]byte, 0, size)
	b = protowire.AppendTag(b, fieldVersionInfo, protowire.BytesType)
	b = protowire.AppendString(b, r.Version)
	for _, e := range r.Resources {
		b = protowire.AppendTag(b, fieldResources, protowire.BytesType)
		b = appendAny(b, e)
	}
	b = protowire.AppendTag(b, fieldTypeURL, protowire.BytesType)
	b = protowire.AppendString(b, r.TypeURL)
	return b
}

func anySize(e *store.Entry) int {
	return protowire.SizeTag(anyTypeURL) + protowire.SizeBytes(len(e.TypeURL)) +
		protowire.SizeTag(anyValue) + protowire.SizeBytes(len(e.Body))
}

// appendAny appends a length-prefixed google.protobuf.Any holding the entry.
func appendAny(b []byte, e *store.Entry) []byte {
	b = protowire.AppendVarint(b, uint64(anySize(e)))
	b = protowire.AppendTag(b, anyTypeURL, protowire.BytesType)
	b = protowire.AppendString(b, e.TypeURL)
	b = protowire.AppendTag(b, anyValue, protowire.BytesType)
	return protowire.AppendBytes(b, e.Body)
}

// sotwMessage returns the message a stream sends: its nonce, plus the shared frame.
func sotwMessage(frame []byte, nonce string) *discoveryv3.DiscoveryResponse {
	m := &discoveryv3.DiscoveryResponse{Nonce: nonce}
	m.ProtoReflect().SetUnknown(frame)
	return m
}

// frameCache shares the frames of identical responses between streams: same type,
// version and resources (the same store entries, in the same order, under the
// same names, from the same table) give the same frame. A delta response that
// names a resource as its client spelled it (X4) shares its frame only with
// responses spelling it alike; one with every name as stored, the common case,
// costs nothing more.
//
// The cache holds the tables its frames were made from weakly. A frame is only
// ever asked for again by a stream reading the same table; once no stream holds
// that table and the store has replaced it, the table is collected, and its
// frames leave the cache with it. Frames of tables still in use are bounded by
// their bytes (Options.FrameCacheBytes): past the bound, the least recently used
// go first. A miss only costs an encoding.
type frameCache struct {
	seed maphash.Seed
	// maxBytes bounds bytes; a frame larger than that is not kept.
	maxBytes int

	mu sync.Mutex
	// tables holds the frames by the address of the table they were made from.
	// A table's entry stays while the table lives, even without frames, so that
	// each table is watched once (a cleanup drops its entry when it is
	// collected), however often its frames come and go.
	tables map[uintptr]*tableFrames
	// bytes is the cost of the frames kept: their bytes and frameOverhead each.
	bytes int
	// recent and oldest are the ends of the frames in order of use, most recent
	// first (frame.newer, frame.older).
	recent, oldest *frame
}

// tableFrames are the frames made from one table.
type tableFrames struct {
	// table confirms the address: a collected table's may be reused.
	table  weak.Pointer[store.Table]
	frames map[frameKey]*frame
}

type frameKey struct {
	delta   bool
	typeURL string
	version string
	// full is set for a response holding exactly the whole table: the table
	// identifies the resources without looking at them.
	full bool
	// hash identifies the resources of any other response.
	hash uint64
}

type frame struct {
	key       frameKey
	of        *tableFrames
	resources []*store.Entry
	names     []string
	removed   []string
	bytes     []byte
	// newer and older link the frames in order of use.
	newer, older *frame
}

// frameOverhead is what a kept frame costs beyond its bytes: the frame and its
// key.
const frameOverhead = 256

// DefaultFrameCacheBytes is the default of Options.FrameCacheBytes.
const DefaultFrameCacheBytes = 64 << 20

func newFrameCache(maxBytes int) *frameCache {
	return &frameCache{tables: make(map[uintptr]*tableFrames), seed: maphash.MakeSeed(), maxBytes: maxBytes}
}

// sotw returns the shared frame of a SotW response, encoding it on a miss.
func (c *frameCache) sotw(r *Response) []byte { return c.get(r, false, encodeSotW) }

// delta returns the shared frame of a delta response, encoding it on a miss.
func (c *frameCache) delta(r *Response) []byte { return c.get(r, true, encodeDelta) }

func (c *frameCache) get(r *Response, delta bool, encode func(*Response) []byte) []byte {
	k := frameKey{delta: delta, typeURL: r.TypeURL, version: r.Version, full: r.Whole}
	if !r.Whole {
		var h maphash.Hash
		h.SetSeed(c.seed)
		for _, e := range r.Resources {
			maphash.WriteComparable(&h, e)
		}
		for _, n := range r.Removed {
			h.WriteString(n)
			h.WriteByte(0)
		}
		if r.Spellings != nil {
			h.WriteByte(1) // what follows are the names of resources (X4)
			for _, n := range r.Spellings {
				h.WriteString(n)
				h.WriteByte(0)
			}
		}
		k.hash = h.Sum64()
	}
	addr := uintptr(unsafe.Pointer(r.Table))
	c.mu.Lock()
	if tf := c.tables[addr]; tf != nil && tf.table.Value() == r.Table {
		if f := tf.frames[k]; f != nil && (r.Whole || (slices.Equal(f.resources, r.Resources) &&
			slices.Equal(f.removed, r.Removed) && slices.Equal(f.names, r.Spellings))) {
			c.touchLocked(f)
			c.mu.Unlock()
			return f.bytes
		}
	}
	c.mu.Unlock()
	f := &frame{key: k, resources: r.Resources, names: r.Spellings, removed: r.Removed, bytes: encode(r)}
	if len(f.bytes)+frameOverhead > c.maxBytes {
		return f.bytes
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tf := c.tables[addr]
	if tf == nil || tf.table.Value() != r.Table {
		if tf != nil {
			c.dropLocked(addr, tf) // a collected table's, whose cleanup has not run yet
		}
		tf = &tableFrames{table: weak.Make(r.Table), frames: make(map[frameKey]*frame)}
		c.tables[addr] = tf
		if r.Table != nil {
			runtime.AddCleanup(r.Table, c.forget, addr)
		}
	}
	if old := tf.frames[k]; old != nil {
		c.removeLocked(old)
	}
	f.of = tf
	tf.frames[k] = f
	c.bytes += len(f.bytes) + frameOverhead
	c.touchLocked(f)
	for c.bytes > c.maxBytes {
		c.removeLocked(c.oldest)
	}
	return f.bytes
}

// forget drops the frames of the table at addr once it has been collected.
func (c *frameCache) forget(addr uintptr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tf := c.tables[addr]; tf != nil && tf.table.Value() == nil {
		c.dropLocked(addr, tf)
	}
}

// dropLocked removes the entry of the table at addr and its frames.
func (c *frameCache) dropLocked(addr uintptr, tf *tableFrames) {
	for _, f := range tf.frames {
		c.removeLocked(f)
	}
	delete(c.tables, addr)
}

// touchLocked makes f the most recently used frame.
func (c *frameCache) touchLocked(f *frame) {
	if c.recent == f {
		return
	}
	c.unlinkLocked(f)
	f.older = c.recent
	if c.recent != nil {
		c.recent.newer = f
	}
	c.recent = f
	if c.oldest == nil {
		c.oldest = f
	}
}

func (c *frameCache) unlinkLocked(f *frame) {
	if f.newer != nil {
		f.newer.older = f.older
	} else if c.recent == f {
		c.recent = f.older
	}
	if f.older != nil {
		f.older.newer = f.newer
	} else if c.oldest == f {
		c.oldest = f.newer
	}
	f.newer, f.older = nil, nil
}

func (c *frameCache) removeLocked(f *frame) {
	c.unlinkLocked(f)
	delete(f.of.frames, f.key)
	c.bytes -= len(f.bytes) + frameOverhead
}

// size reports the frames kept, their cost and the tables watched, for tests.
func (c *frameCache) size() (frames, bytes, tables int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tf := range c.tables {
		frames += len(tf.frames)
	}
	return frames, c.bytes, len(c.tables)
}

// DeltaDiscoveryResponse and Resource field numbers.
const (
	deltaSystemVersion = 1
	deltaResources     = 2
	deltaTypeURL       = 4
	deltaRemoved       = 6

	resourceVersion = 1
	resourceBody    = 2
	resourceName    = 3
)

// encodeDelta writes every field of a DeltaDiscoveryResponse but its nonce: each
// resource as a discovery Resource with its name (as the client spelled it, X4)
// and content version (D8).
func encodeDelta(r *Response) []byte {
	size := protowire.SizeTag(deltaSystemVersion) + protowire.SizeBytes(len(r.Version)) +
		protowire.SizeTag(deltaTypeURL) + protowire.SizeBytes(len(r.TypeURL))
	for i, e := range r.Resources {
		size += protowire.SizeTag(deltaResources) + protowire.SizeBytes(resourceSize(e, r.ResourceName(i)))
	}
	for _, n := range r.Removed {
		size += protowire.SizeTag(deltaRemoved) + protowire.SizeBytes(len(n))
	}
	b := make([]byte, 0, size)
	b = protowire.AppendTag(b, deltaSystemVersion, protowire.BytesType)
	b = protowire.AppendString(b, r.Version)
	for i, e := range r.Resources {
		name := r.ResourceName(i)
		b = protowire.AppendTag(b, deltaResources, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(resourceSize(e, name)))
		b = protowire.AppendTag(b, resourceName, protowire.BytesType)
		b = protowire.AppendString(b, name)
		b = protowire.AppendTag(b, resourceVersion, protowire.BytesType)
		b = protowire.AppendString(b, e.Version)
		b = protowire.AppendTag(b, resourceBody, protowire.BytesType)
		b = appendAny(b, e)
	}
	b = protowire.AppendTag(b, deltaTypeURL, protowire.BytesType)
	b = protowire.AppendString(b, r.TypeURL)
	for _, n := range r.Removed {
		b = protowire.AppendTag(b, deltaRemoved, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	return b
}

// resourceSize is the size of the discovery Resource of e sent under name.
func resourceSize(e *store.Entry, name string) int {
	return protowire.SizeTag(resourceName) + protowire.SizeBytes(len(name)) +
		protowire.SizeTag(resourceVersion) + protowire.SizeBytes(len(e.Version)) +
		protowire.SizeTag(resourceBody) + protowire.SizeBytes(anySize(e))
}

// deltaMessage returns the message a delta stream sends: its nonce, plus the
// shared frame.
func deltaMessage(frame []byte, nonce string) *discoveryv3.DeltaDiscoveryResponse {
	m := &discoveryv3.DeltaDiscoveryResponse{Nonce: nonce}
	m.ProtoReflect().SetUnknown(frame)
	return m
}

// SotWResponse returns the DiscoveryResponse that carries r on the wire, every
// field decoded from exactly the bytes a stream sends.
func SotWResponse(r *Response) (*discoveryv3.DiscoveryResponse, error) {
	out := new(discoveryv3.DiscoveryResponse)
	return out, wire(sotwMessage(encodeSotW(r), r.Nonce), out)
}

// DeltaResponse is SotWResponse for a delta response.
func DeltaResponse(r *Response) (*discoveryv3.DeltaDiscoveryResponse, error) {
	out := new(discoveryv3.DeltaDiscoveryResponse)
	return out, wire(deltaMessage(encodeDelta(r), r.Nonce), out)
}

func wire(m, out proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return proto.Unmarshal(b, out)
}
