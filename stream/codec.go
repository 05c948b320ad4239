package stream

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
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
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}
