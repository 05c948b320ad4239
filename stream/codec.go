package stream

import (
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/stream/machine"

	// Registers the "proto" codec that codec delegates to.
	_ "google.golang.org/grpc/encoding/proto"
)

// ServerOption returns the gRPC server option that lets responses share their
// encoded frames without a copy per stream, and requests share their resource
// names. leanxds works without it (each stream then copies the shared frame once
// per response, and decodes every name of every request); with it, fan-out to
// many streams costs no copy:
//
//	g := grpc.NewServer(stream.ServerOption())
//
// Each call makes a codec of its own, sharing names only between the streams of
// the gRPC server it is given to; Server.GRPCOptions gives the codec the
// server's own caches instead.
func ServerOption() grpc.ServerOption { return codecOption(machine.NewCaches()) }

func codecOption(c *machine.Caches) grpc.ServerOption {
	return grpc.ForceServerCodecV2(codec{caches: c})
}

// codec is grpc-go's proto codec, except that a message carrying a shared frame as
// unknown fields is sent as two buffers: its own fields, then the frame as it is,
// and that the resource names of a SotW request are decoded as names shared
// between streams (machine.Caches.UnmarshalRequest).
type codec struct {
	// caches hold the table of names the requests share.
	caches *machine.Caches
}

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

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if req, ok := v.(*discoveryv3.DiscoveryRequest); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return c.caches.UnmarshalRequest(buf.ReadOnlyData(), req)
	}
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}
