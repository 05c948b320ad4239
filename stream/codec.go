package stream

import (
	"errors"
	"hash/maphash"
	"sync"
	"unicode/utf8"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	// Registers the "proto" codec that codec delegates to.
	_ "google.golang.org/grpc/encoding/proto"
)

// ServerOption returns the gRPC server option that lets responses share their
// encoded frames without a copy per stream. leanxds works without it (each stream
// then copies the shared frame once per response); with it, fan-out to many
// streams costs no copy:
//
//	g := grpc.NewServer(stream.ServerOption())
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(codec{}) }

// codec is grpc-go's proto codec, except that a message carrying a shared frame as
// unknown fields is sent as two buffers: its own fields, then the frame as it is.
type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(proto.Message); ok {
		r := m.ProtoReflect()
		if frame := r.GetUnknown(); len(frame) > 0 {
			r.SetUnknown(nil)
			head, err := proto.Marshal(m)
			r.SetUnknown(frame)
			if err != nil {
				return nil, err
			}
			return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(frame)}, nil
		}
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if req, ok := v.(*discoveryv3.DiscoveryRequest); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return unmarshalRequest(buf.ReadOnlyData(), req)
	}
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

// unmarshalRequest decodes a SotW request whose resource names are shared
// strings. An Envoy repeats its whole list of names, a thousand EDS services, in
// every request of the type, and a fleet names the same services: decoding them
// as new strings would allocate a thousand strings per ACK per stream. A list
// seen recently is reused whole (req.ResourceNames is then shared: it is only
// read); other names come from a table of names. The other fields are decoded by
// proto.Unmarshal as usual.
func unmarshalRequest(b []byte, req *discoveryv3.DiscoveryRequest) error {
	var h maphash.Hash
	h.SetSeed(requestLists.seed)
	count := 0
	rest := make([]byte, 0, 256)
	for in := b; len(in) > 0; {
		num, typ, n := protowire.ConsumeTag(in)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, in[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		if num == fieldResourceNames && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(in[n:])
			h.Write(v)
			h.WriteByte(0)
			count++
		} else {
			rest = append(rest, in[:n+m]...)
		}
		in = in[n+m:]
	}
	if err := proto.Unmarshal(rest, req); err != nil {
		return err
	}
	if count == 0 {
		return nil
	}
	key := h.Sum64()
	requestLists.mu.Lock()
	names := requestLists.lists[key]
	requestLists.mu.Unlock()
	if len(names) == count && sameNames(b, names) {
		req.ResourceNames = names
		return nil
	}
	names, err := decodeNames(b, count)
	if err != nil {
		return err
	}
	requestLists.mu.Lock()
	if len(requestLists.lists) >= maxRequestLists {
		clear(requestLists.lists)
	}
	requestLists.lists[key] = names
	requestLists.mu.Unlock()
	req.ResourceNames = names
	return nil
}

// eachName calls f with every resource name of an encoded request, in order.
func eachName(b []byte, f func(v []byte) bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[n:]) // b was checked already
		if num == fieldResourceNames && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			if !f(v) {
				return
			}
		}
		b = b[n+m:]
	}
}

// sameNames reports whether the names of b are exactly names.
func sameNames(b []byte, names []string) bool {
	i, same := 0, true
	eachName(b, func(v []byte) bool {
		same = i < len(names) && names[i] == string(v)
		i++
		return same
	})
	return same && i == len(names)
}

// decodeNames returns the count names of b as shared strings.
func decodeNames(b []byte, count int) ([]string, error) {
	names := make([]string, 0, count)
	var err error
	requestNames.mu.RLock() // once per list, not once per name
	var misses []int
	eachName(b, func(v []byte) bool {
		s, ok := requestNames.names[string(v)]
		if !ok {
			misses = append(misses, len(names))
		}
		names = append(names, s)
		return true
	})
	requestNames.mu.RUnlock()
	if len(misses) > 0 {
		i, k := 0, 0
		eachName(b, func(v []byte) bool {
			if k < len(misses) && misses[k] == i {
				names[i], err = requestNames.intern(v)
				k++
			}
			i++
			return err == nil
		})
	}
	return names, err
}

// requestLists remembers recent lists of names, by a hash of their bytes.
var requestLists = struct {
	mu    sync.Mutex
	seed  maphash.Seed
	lists map[uint64][]string
}{seed: maphash.MakeSeed(), lists: map[uint64][]string{}}

// maxRequestLists bounds requestLists; past it, it starts afresh.
const maxRequestLists = 256

// DiscoveryRequest.resource_names.
const fieldResourceNames = 3

// nameTable interns the resource names of requests.
type nameTable struct {
	mu    sync.RWMutex
	names map[string]string
}

// maxRequestNames bounds the table; past it, it starts afresh.
const maxRequestNames = 1 << 20

var requestNames = nameTable{names: map[string]string{}}

// intern returns the shared string of b, checking that a name it has not seen
// is valid UTF-8 as proto.Unmarshal would.
func (t *nameTable) intern(b []byte) (string, error) {
	t.mu.RLock()
	s, ok := t.names[string(b)]
	t.mu.RUnlock()
	if ok {
		return s, nil
	}
	if !utf8.Valid(b) {
		return "", errors.New("resource_names: string field contains invalid UTF-8")
	}
	s = string(b)
	t.mu.Lock()
	if len(t.names) >= maxRequestNames {
		clear(t.names)
	}
	t.names[s] = s
	t.mu.Unlock()
	return s, nil
}
