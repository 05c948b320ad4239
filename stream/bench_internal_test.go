package stream

import (
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream/machine"
)

const benchStreams = 1000

func benchStore(b *testing.B) *store.Store {
	st := store.New()
	var changes []store.Change
	for i := range 100 {
		changes = append(changes, store.Set("edge", xdstest.Cluster(fmt.Sprintf("cluster-%03d", i))))
	}
	if _, err := st.Commit(changes...); err != nil {
		b.Fatal(err)
	}
	return st
}

func benchUpdate(b *testing.B, st *store.Store, i int) store.View {
	if _, err := st.Commit(store.Set("edge", xdstest.Cluster("cluster-042", xdstest.WithConnectTimeout(time.Duration(i%5+2)*time.Second)))); err != nil {
		b.Fatal(err)
	}
	return st.View()
}

// BenchmarkPushCDS measures one 100-cluster CDS update pushed to 1,000 wildcard
// streams, per stream, for each variant: the state machine's work, the shared
// frame, and the marshalling a gRPC send does (with ServerOption's codec).
// Resources are never re-encoded; the frame is assembled once and shared.
func BenchmarkPushCDS(b *testing.B) {
	b.Run("sotw", func(b *testing.B) {
		caches := machine.NewCaches()
		benchPush(b, func(v store.View) responder {
			s := machine.NewSotW(machine.Config{Scope: "edge", Node: &corev3.Node{Id: "n"}, Caches: caches})
			if _, err := s.Receive(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeCluster}, time.Now(), v); err != nil {
				b.Fatal(err)
			}
			return s
		}, func(f *frameCache, r *Response) proto.Message { return sotwMessage(f.sotw(r), r.Nonce) })
	})
	b.Run("delta", func(b *testing.B) {
		caches := machine.NewCaches()
		benchPush(b, func(v store.View) responder {
			d := machine.NewDelta(machine.Config{Scope: "edge", Node: &corev3.Node{Id: "n"}, Caches: caches})
			if _, err := d.Receive(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: protocol.TypeCluster, ResourceNamesSubscribe: []string{"*"}}, time.Now(), v); err != nil {
				b.Fatal(err)
			}
			return d
		}, func(f *frameCache, r *Response) proto.Message { return deltaMessage(f.delta(r), r.Nonce) })
	})
}

// responder is what benchPush needs of a state machine.
type responder interface{ Responses(store.View) []*Response }

func benchPush(b *testing.B, open func(store.View) responder, message func(*frameCache, *Response) proto.Message) {
	st := benchStore(b)
	frames := newFrameCache(DefaultFrameCacheBytes)
	streams := make([]responder, benchStreams)
	v := st.View()
	for i := range streams {
		streams[i] = open(v)
		streams[i].Responses(v)
	}
	c := codec{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		v := benchUpdate(b, st, i)
		b.StartTimer()
		for _, s := range streams {
			for _, r := range s.Responses(v) {
				buf, err := c.Marshal(message(frames, r))
				if err != nil || buf.Len() == 0 {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchStreams, "ns/stream")
}

// BenchmarkPushCDSMarshalPerStream is the baseline: the same push, with each
// stream building its DiscoveryResponse from decoded resources and marshalling it,
// as a server without encode-once does.
func BenchmarkPushCDSMarshalPerStream(b *testing.B) {
	st := benchStore(b)
	codecProto := encoding.GetCodecV2("proto")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		v := benchUpdate(b, st, i)
		msgs := make([]proto.Message, 0, 100)
		for _, e := range v.Table("edge", protocol.TypeCluster).Sorted() {
			m, err := resources.Decode(e.TypeURL, e.Body)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		b.StartTimer()
		for s := range benchStreams {
			resp := &discoveryv3.DiscoveryResponse{VersionInfo: "v", TypeUrl: protocol.TypeCluster, Nonce: fmt.Sprint(s)}
			for _, m := range msgs {
				a, err := anypb.New(m)
				if err != nil {
					b.Fatal(err)
				}
				resp.Resources = append(resp.Resources, a)
			}
			buf, err := codecProto.Marshal(resp)
			if err != nil || buf.Len() == 0 {
				b.Fatal(err)
			}
			buf.Free()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchStreams, "ns/stream")
}
