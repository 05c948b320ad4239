package machine

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/protocol"
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
	names := newNameTable(Limits{})
	for _, names := range []*nameTable{names, names, newNameTable(Limits{MaxNames: 1})} { // a miss, a hit, names over the limits
		var got discoveryv3.DiscoveryRequest
		if err := unmarshalRequest(b, &got, names); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, req) {
			t.Fatalf("decoded %v, want %v", &got, req)
		}
	}

	bad := protowire.AppendTag(nil, fieldResourceNames, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff, 0xfe})
	for _, names := range []*nameTable{names, newNameTable(Limits{MaxNameBytes: 1})} {
		if err := unmarshalRequest(bad, new(discoveryv3.DiscoveryRequest), names); err == nil {
			t.Fatal("a name that is not UTF-8 was accepted")
		}
	}
}

// settle collects until cond holds, a bounded number of times: what is held
// weakly leaves its table in a cleanup that runs after the collection that
// finds it unreachable.
func settle(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 50 {
		runtime.GC()
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not so after 50 collections", what)
}

func encodedRequest(t *testing.T, names ...string) []byte {
	t.Helper()
	b, err := proto.Marshal(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeEndpoint, ResourceNames: names})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decoded(t *testing.T, names *nameTable, b []byte) *discoveryv3.DiscoveryRequest {
	t.Helper()
	req := new(discoveryv3.DiscoveryRequest)
	if err := unmarshalRequest(b, req, names); err != nil {
		t.Fatal(err)
	}
	return req
}

// Names are shared while something uses them, and only then: a list decoded
// again is the same list, a name still subscribed stays the shared one, and the
// rest leave the table once nothing holds them.
func TestSharedNamesLeaveWithTheirUsers(t *testing.T) {
	names := newNameTable(Limits{})
	var list []string
	for i := range 1000 {
		list = append(list, fmt.Sprintf("outbound|8080||service-%04d.default.svc.cluster.local", i))
	}
	b := encodedRequest(t, list...)
	list = nil
	first := decoded(t, names, b).ResourceNames
	again := decoded(t, names, b).ResourceNames
	require.Same(t, &first[0], &again[0], "a list seen recently is reused whole")
	n, lists, _ := names.size()
	require.Equal(t, 1000, n)
	require.Equal(t, 1, lists)

	kept := first[7] // a name something still uses
	first, again = nil, nil
	settle(t, "only the name in use is left", func() bool {
		n, lists, bytes := names.size()
		return n == 1 && lists == 0 && bytes == len(kept)+sharedNameOverhead
	})
	got := decoded(t, names, encodedRequest(t, "other", kept)).ResourceNames
	require.Equal(t, unsafe.StringData(kept), unsafe.StringData(got[1]), "the name in use is still shared")
	runtime.KeepAlive(kept)
}

// The names of a request over the table's limits are decoded, for the
// server's Limits to decide, but not shared; names are shared up to a bound of
// bytes, and decoded unshared past it.
func TestSharedNamesWithinLimits(t *testing.T) {
	names := newNameTable(Limits{MaxNameBytes: 10})
	req := decoded(t, names, encodedRequest(t, "ok", "01234567890"))
	require.Equal(t, []string{"ok", "01234567890"}, req.ResourceNames)
	n, lists, bytes := names.size()
	require.Zero(t, n+lists+bytes, "names over the limits were kept")

	names.maxBytes = 3 * (10 + sharedNameOverhead)
	var held [][]string
	for i := range 5 {
		req := decoded(t, names, encodedRequest(t, fmt.Sprintf("name-%05d", i)))
		require.Equal(t, []string{fmt.Sprintf("name-%05d", i)}, req.ResourceNames)
		held = append(held, req.ResourceNames)
	}
	n, _, bytes = names.size()
	require.Equal(t, 3, n)
	require.LessOrEqual(t, bytes, names.maxBytes)
	runtime.KeepAlive(held)
}
