// Command floor is the raw gRPC floor of the load benchmarks: a bidi-stream
// server on the ADS method that does nothing but send pre-encoded bytes. It
// answers each stream's first request of a type with that type's whole
// configuration (the same bytes for every stream, encoded once at start), ignores
// every other request, and on a commit broadcasts one pre-encoded message of the
// asked size to every stream. It keeps no per-stream protocol state: what it costs
// is what gRPC itself costs, the physical limit of fan-out on the machine. A
// broadcast carries what the client must read for the change (see Apply).
//
//	floor -addr 127.0.0.1:18000 -control 127.0.0.1:18001
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/bench/control"
	"github.com/leanxds/leanxds/bench/workload"
	"github.com/leanxds/leanxds/protocol"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "gRPC listen address (loopback)")
	ctl := flag.String("control", "127.0.0.1:18001", "control API listen address (loopback)")
	timeout := flag.Duration("timeout", 2*time.Hour, "exit after this long whatever happens")
	w := workload.Flags(flag.CommandLine)
	flag.Parse()
	if _, err := control.RaiseOpenFiles(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	f, err := newFloor(w.Resources())
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	if err := f.serve(*addr, *ctl, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// floor holds the pre-encoded responses and the open streams.
type floor struct {
	// frames are the whole configuration of each type, as one encoded
	// DiscoveryResponse each.
	frames map[string][]byte
	// resources are the resources fields alone of each frame.
	resources map[string][]byte
	counts    control.Counts

	mu      sync.Mutex
	streams map[*bidi]struct{}
}

// bidi is one stream; mu serialises its sends (the stream's own answers and
// broadcasts).
type bidi struct {
	mu sync.Mutex
	ss grpc.ServerStream
}

func newFloor(res map[string][]proto.Message) (*floor, error) {
	f := &floor{frames: map[string][]byte{}, resources: map[string][]byte{}, streams: map[*bidi]struct{}{}}
	for _, t := range workload.Types {
		r := &discoveryv3.DiscoveryResponse{TypeUrl: t, VersionInfo: "floor-0", Nonce: "0"}
		for _, m := range res[t] {
			a, err := anypb.New(m)
			if err != nil {
				return nil, err
			}
			r.Resources = append(r.Resources, a)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			return nil, err
		}
		f.frames[t] = b
		res, err := proto.MarshalOptions{Deterministic: true}.Marshal(&discoveryv3.DiscoveryResponse{Resources: r.Resources})
		if err != nil {
			return nil, err
		}
		f.resources[t] = res
	}
	f.counts = control.Counts{
		Clusters: len(res[protocol.TypeCluster]), Assignments: len(res[protocol.TypeEndpoint]),
		Listeners: len(res[protocol.TypeListener]), Routes: len(res[protocol.TypeRoute]),
	}
	return f, nil
}

func (f *floor) serve(addr, ctl string, timeout time.Duration) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}), control.ServerKeepalive())
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "envoy.service.discovery.v3.AggregatedDiscoveryService",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "StreamAggregatedResources",
			Handler:       func(_ any, ss grpc.ServerStream) error { return f.stream(ss) },
			ServerStreams: true,
			ClientStreams: true,
		}},
	}, f)
	go func() { _ = g.Serve(lis) }()

	mux := http.NewServeMux()
	control.Handler(mux, f)
	err = control.ServeUntil("floor", ctl, mux, timeout)
	g.Stop()
	return err
}

// stream answers a first request of each type with its frame and ignores the rest.
func (f *floor) stream(ss grpc.ServerStream) error {
	b := &bidi{ss: ss}
	f.mu.Lock()
	f.streams[b] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.streams, b)
		f.mu.Unlock()
	}()
	var req request
	for {
		if err := ss.RecvMsg(&req); err != nil {
			return nil
		}
		if req.nonce {
			continue // an ACK: nothing to do
		}
		if frame, ok := f.frames[req.typeURL]; ok {
			b.mu.Lock()
			err := ss.SendMsg(frame)
			b.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
}

// Apply implements control.Server: it broadcasts one message to every stream and
// returns at once. For a change of endpoints (kind endpoint) the message is an EDS
// response of about size bytes naming the resource name; for a change of clusters
// (kinds cluster and all) it is the whole CDS configuration again under a new
// version: the same bytes for the client to read as a CDS response of leanxds.
func (f *floor) Apply(kind, name string, seq, size int) error {
	var msg []byte
	switch kind {
	case control.KindEndpoint:
		msg = broadcastMessage(name, seq, size)
	case control.KindCluster, control.KindAll:
		msg = f.reversioned(protocol.TypeCluster, seq)
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	f.mu.Lock()
	all := make([]*bidi, 0, len(f.streams))
	for b := range f.streams {
		all = append(all, b)
	}
	f.mu.Unlock()
	// Senders take the next stream from a shared index, so a client slow to read
	// (whose send waits on flow control) holds up one sender, not a share of the
	// streams.
	var next atomic.Int64
	for range min(len(all), broadcasters) {
		go func() {
			for i := next.Add(1) - 1; i < int64(len(all)); i = next.Add(1) - 1 {
				b := all[i]
				b.mu.Lock()
				_ = b.ss.SendMsg(msg)
				b.mu.Unlock()
			}
		}()
	}
	return nil
}

// broadcasters is how many goroutines send a broadcast.
const broadcasters = 256

// Counts implements control.Server.
func (f *floor) Counts() control.Counts { return f.counts }

// reversioned is the whole configuration of a type as a response of another
// version and nonce.
func (f *floor) reversioned(typeURL string, seq int) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, "floor-"+strconv.Itoa(seq))
	b = append(b, f.resources[typeURL]...)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendString(b, typeURL)
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendString(b, "b"+strconv.Itoa(seq))
}

// broadcastMessage is an encoded EDS DiscoveryResponse of about size bytes: one
// ClusterLoadAssignment named name, padded with an unknown field.
func broadcastMessage(name string, seq, size int) []byte {
	const padField = 1000
	build := func(pad int) []byte {
		cla := protowire.AppendTag(nil, 1, protowire.BytesType)
		cla = protowire.AppendString(cla, name)
		if pad > 0 {
			cla = protowire.AppendTag(cla, padField, protowire.BytesType)
			cla = protowire.AppendBytes(cla, make([]byte, pad))
		}
		anyb := protowire.AppendTag(nil, 1, protowire.BytesType)
		anyb = protowire.AppendString(anyb, protocol.TypeEndpoint)
		anyb = protowire.AppendTag(anyb, 2, protowire.BytesType)
		anyb = protowire.AppendBytes(anyb, cla)
		b := protowire.AppendTag(nil, 1, protowire.BytesType)
		b = protowire.AppendString(b, "floor-"+strconv.Itoa(seq))
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, anyb)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, protocol.TypeEndpoint)
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		return protowire.AppendString(b, "b"+strconv.Itoa(seq))
	}
	pad := 0
	for range 3 { // the varint lengths settle in a step or two
		if n := len(build(pad)); n != size {
			pad = max(0, pad+size-n)
		}
	}
	return build(pad)
}

// request is what the floor reads of a DiscoveryRequest: its type and whether it
// answers a response (carries a nonce).
type request struct {
	typeURL string
	nonce   bool
}

// rawCodec sends []byte as they are and reads only a request's type_url and
// response_nonce.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.([]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*request)
	if !ok {
		return encoding.GetCodecV2("proto").Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	r.nonce = false
	typed := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 4 || num == 5) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			if num == 4 {
				typed = true
				if r.typeURL != string(v) { // keep the string of the last request: no allocation
					r.typeURL = string(v)
				}
			} else {
				r.nonce = len(v) > 0
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	if !typed {
		r.typeURL = ""
	}
	return nil
}
