package stream

import (
	"errors"
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
// as new strings would allocate a thousand strings per ACK per stream. The other
// fields are decoded by proto.Unmarshal as usual.
func unmarshalRequest(b []byte, req *discoveryv3.DiscoveryRequest) error {
	var names []string
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
			name, err := requestNames.intern(v)
			if err != nil {
				return err
			}
			names = append(names, name)
		} else {
			rest = append(rest, in[:n+m]...)
		}
		in = in[n+m:]
	}
	if err := proto.Unmarshal(rest, req); err != nil {
		return err
	}
	req.ResourceNames = names
	return nil
}

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
