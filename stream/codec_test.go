package stream

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The codec's request decoding, which shares resource names between requests,
// reads what proto.Unmarshal reads.
func TestUnmarshalRequestMatchesProto(t *testing.T) {
	req := &discoveryv3.DiscoveryRequest{
		VersionInfo: "v1", Node: &corev3.Node{Id: "n", Cluster: "c"},
		ResourceNames: []string{"b", "a", "a", "xdstp://auth/t/x?b=1&a=2"},
		TypeUrl:       "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
		ResponseNonce: "3", ErrorDetail: &status.Status{Code: 3, Message: "bad"},
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a miss, then a hit of the name table
		var got discoveryv3.DiscoveryRequest
		if err := unmarshalRequest(b, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, req) {
			t.Fatalf("decoded %v, want %v", &got, req)
		}
	}

	bad := protowire.AppendTag(nil, fieldResourceNames, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff, 0xfe})
	if err := unmarshalRequest(bad, new(discoveryv3.DiscoveryRequest)); err == nil {
		t.Fatal("a name that is not UTF-8 was accepted")
	}
}
