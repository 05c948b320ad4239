package resources

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/protocol"
)

// samples holds one non-empty resource of every served type, with its name.
func samples(t *testing.T) map[string]Resource {
	lbEndpoint := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
		Endpoint: &endpointv3.Endpoint{Address: socketAddress(9000)},
	}}
	return map[string]Resource{
		protocol.TypeListener: {Name: "edge", Message: hcmListener(t, "edge", rdsHCM(t, "main"))},
		protocol.TypeRoute:    {Name: "main", Message: &routev3.RouteConfiguration{Name: "main"}},
		protocol.TypeScopedRoute: {Name: "scope-a", Message: &routev3.ScopedRouteConfiguration{
			Name: "scope-a", RouteConfigurationName: "main",
			Key: &routev3.ScopedRouteConfiguration_Key{Fragments: []*routev3.ScopedRouteConfiguration_Key_Fragment{
				{Type: &routev3.ScopedRouteConfiguration_Key_Fragment_StringKey{StringKey: "a"}},
			}},
		}},
		protocol.TypeVirtualHost: {Name: "main/www", Message: &routev3.VirtualHost{Name: "main/www", Domains: []string{"www"}}},
		protocol.TypeCluster:     {Name: "web", Message: edsCluster("web", "")},
		protocol.TypeEndpoint:    {Name: "web", Message: &endpointv3.ClusterLoadAssignment{ClusterName: "web"}},
		protocol.TypeLbEndpoint:  {Name: "", Message: lbEndpoint},
		protocol.TypeSecret:      {Name: "cert", Message: &tlsv3.Secret{Name: "cert"}},
		protocol.TypeRuntime:     {Name: "rt", Message: &runtimev3.Runtime{Name: "rt"}},
		protocol.TypeExtensionCfg: {Name: "router", Message: &corev3.TypedExtensionConfig{
			Name: "router", TypedConfig: routerFilter(t).GetTypedConfig(),
		}},
	}
}

func TestRegistryRoundTripsEveryServedType(t *testing.T) {
	all := samples(t)
	require.Len(t, protocol.Types(), len(all))
	for _, ti := range protocol.Types() {
		t.Run(ti.Short, func(t *testing.T) {
			s, ok := all[ti.URL]
			require.True(t, ok, "no sample for %s", ti.URL)
			assert.True(t, Known(ti.URL))

			fresh, err := NewMessage(ti.URL)
			require.NoError(t, err)
			got, err := TypeURLOf(fresh)
			require.NoError(t, err)
			assert.Equal(t, ti.URL, got)

			b, err := proto.Marshal(s.Message)
			require.NoError(t, err)
			decoded, err := Decode(ti.URL, b)
			require.NoError(t, err)
			assertProtoEqual(t, s.Message, decoded)

			fromAny, err := DecodeAny(toAny(t, s.Message))
			require.NoError(t, err)
			assertProtoEqual(t, s.Message, fromAny)

			assert.Equal(t, s.Name, NameOf(decoded))
			require.NoError(t, Validate(ti.URL, "", decoded), "sample must be valid")
		})
	}
}

func TestUnknownTypes(t *testing.T) {
	const bogus = "type.googleapis.com/envoy.config.bogus.v3.Bogus"
	assert.False(t, Known(bogus))

	_, err := NewMessage(bogus)
	require.ErrorIs(t, err, ErrUnknownType)
	assert.Contains(t, err.Error(), bogus)
	assert.Contains(t, err.Error(), "CDS", "the error lists the served types")

	_, err = Decode(bogus, nil)
	require.ErrorIs(t, err, ErrUnknownType)

	_, err = TypeURLOf(&hcmv3.HttpConnectionManager{})
	require.ErrorIs(t, err, ErrUnknownType)
	assert.Contains(t, err.Error(), "HttpConnectionManager")
}

func TestDecodeAnyRejectsWrongType(t *testing.T) {
	_, err := DecodeAny(toAny(t, &hcmv3.HttpConnectionManager{StatPrefix: "x"}))
	require.ErrorIs(t, err, ErrUnknownType)
	assert.Contains(t, err.Error(), "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager")

	// A served type URL over bytes that are not that message.
	_, err = DecodeAny(&anypb.Any{TypeUrl: protocol.TypeCluster, Value: []byte{0xff, 0xff, 0xff}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CDS")

	_, err = DecodeAny(nil)
	require.Error(t, err)
}

func TestNameOf(t *testing.T) {
	assert.Equal(t, "web", NameOf(&endpointv3.ClusterLoadAssignment{ClusterName: "web"}))
	assert.Equal(t, "web", NameOf(edsCluster("web", "svc")), "a cluster is named by name, not service_name")
	assert.Equal(t, "", NameOf(&endpointv3.LbEndpoint{}))
	assert.Equal(t, "", NameOf(&hcmv3.HttpConnectionManager{StatPrefix: "x"}))
	assert.Equal(t, "", NameOf(nil))
}

// assertProtoEqual compares messages by content, which == and assert.Equal cannot.
func assertProtoEqual(t *testing.T, want, got proto.Message) {
	t.Helper()
	assert.Truef(t, proto.Equal(want, got), "want %v\ngot  %v", want, got)
}

// Check validates once and says so; Parse's resources are validated too, and a
// Resource changed since, or built by hand, is not.
func TestCheckAndValidated(t *testing.T) {
	c := &clusterv3.Cluster{Name: "web", ConnectTimeout: durationpb.New(time.Second)}
	r, err := Check(protocol.TypeCluster, "", c)
	require.NoError(t, err)
	assert.Equal(t, "web", r.Name)
	assert.Same(t, c, r.Message)
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	require.NoError(t, err)
	assert.Equal(t, want, r.Encoded(), "encoded once, deterministically")
	assert.True(t, r.Validated())

	other := r
	other.Message = &clusterv3.Cluster{Name: "web", ConnectTimeout: durationpb.New(time.Second)}
	assert.False(t, other.Validated(), "another message")
	assert.Nil(t, other.Encoded(), "no encoding for what is not validated")
	other = r
	other.TypeURL = protocol.TypeListener
	assert.False(t, other.Validated(), "another type")
	assert.False(t, Resource{TypeURL: protocol.TypeCluster, Name: "web", Message: c}.Validated())

	_, err = Check(protocol.TypeCluster, "", &clusterv3.Cluster{Name: "web", ConnectTimeout: durationpb.New(-time.Second)})
	require.Error(t, err)
	_, err = Check(protocol.TypeCluster, "api", c)
	require.Error(t, err, "a name the message does not carry")

	rs, err := Load("testdata/edge.yaml")
	require.NoError(t, err)
	for _, r := range rs {
		assert.True(t, r.Validated(), r.Name)
	}
}
