package resources

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/leanxds/leanxds/protocol"
)

// validationErrors returns the *ValidationErrors err is made of, failing the test
// if it holds anything else.
func validationErrors(t *testing.T, err error) []*ValidationError {
	t.Helper()
	var ves []*ValidationError
	require.True(t, collectValidationErrors(err, &ves), "not only validation errors: %v", err)
	return ves
}

func fields(ves []*ValidationError) []string {
	var out []string
	for _, ve := range ves {
		out = append(out, ve.Field)
	}
	return out
}

func TestValidateAcceptsValidCluster(t *testing.T) {
	require.NoError(t, Validate(protocol.TypeCluster, "web", edsCluster("web", "")))
	require.NoError(t, Validate(protocol.TypeCluster, "", staticCluster("db")), "an empty name means the message's own")
}

func TestValidateNegativeConnectTimeout(t *testing.T) {
	c := edsCluster("web", "")
	c.ConnectTimeout = durationpb.New(-time.Second)

	err := Validate(protocol.TypeCluster, "web", c)
	require.Error(t, err)
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, protocol.TypeCluster, ve.TypeURL)
	assert.Equal(t, "web", ve.Name)
	assert.Equal(t, "connect_timeout", ve.Field)
	assert.Equal(t, `CDS "web": connect_timeout: value must be greater than 0s`, ve.Error())
}

func TestValidateReportsEveryViolation(t *testing.T) {
	c := edsCluster("web", "")
	c.ConnectTimeout = durationpb.New(-time.Second)
	c.LbPolicy = clusterv3.Cluster_LbPolicy(99)
	err := Validate(protocol.TypeCluster, "web", c)
	_, joined := err.(interface{ Unwrap() []error })
	assert.True(t, joined, "several violations are joined")
	ves := validationErrors(t, err)
	assert.Equal(t, []string{"connect_timeout", "lb_policy"}, fields(ves))
}

func TestValidateEntersNestedAny(t *testing.T) {
	hcm := rdsHCM(t, "main")
	hcm.StatPrefix = ""
	l := hcmListener(t, "edge", hcm)

	err := Validate(protocol.TypeListener, "edge", l)
	ves := validationErrors(t, err)
	require.Len(t, ves, 1)
	assert.Equal(t, "filter_chains[0].filters[0].typed_config.stat_prefix", ves[0].Field)
	assert.Equal(t, `LDS "edge": filter_chains[0].filters[0].typed_config.stat_prefix: value length must be at least 1 runes`, err.Error())
}

func TestValidateEntersAnyInsideAny(t *testing.T) {
	hcm := rdsHCM(t, "main")
	fault := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 99},
	}}
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{{
		Name:       "envoy.filters.http.fault",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(t, fault)},
	}}, hcm.HttpFilters...)
	// The broken filter sits in the second chain, to see the index in the path.
	l := hcmListener(t, "edge", rdsHCM(t, "main"))
	l.FilterChains = append(l.FilterChains, hcmListener(t, "edge", hcm).FilterChains...)

	ves := validationErrors(t, Validate(protocol.TypeListener, "edge", l))
	assert.Equal(t, []string{"filter_chains[1].filters[0].typed_config.http_filters[0].typed_config.abort.http_status"}, fields(ves))
	assert.Contains(t, ves[0].Reason, "[200, 600)")
}

func TestValidateAnyPayloads(t *testing.T) {
	l := listener("edge", &listenerv3.Filter{
		Name: "broken",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{
			TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
			Value:   []byte{0xff, 0xff, 0xff},
		}},
	}, &listenerv3.Filter{
		// Envoy may know this extension; leanxds passes it through unchecked.
		Name:       "opaque",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/example.Unknown", Value: []byte{0xff}}},
	})
	ves := validationErrors(t, Validate(protocol.TypeListener, "edge", l))
	require.Len(t, ves, 1)
	assert.Equal(t, "filter_chains[0].filters[0].typed_config", ves[0].Field)
	assert.Contains(t, ves[0].Reason, "cannot decode")
}

func TestValidateNames(t *testing.T) {
	err := Validate(protocol.TypeCluster, "", staticCluster(""))
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "name", ve.Field)
	assert.Equal(t, "CDS: name: must not be empty", ve.Error())

	err = Validate(protocol.TypeEndpoint, "", &endpointv3.ClusterLoadAssignment{})
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "cluster_name", ve.Field)

	err = Validate(protocol.TypeCluster, "api", staticCluster("web"))
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, ve.Error(), `is "web", but the resource is served as "api"`)

	// An LbEndpoint has no name field: whatever it is served as is fine.
	ep := samples(t)[protocol.TypeLbEndpoint].Message
	require.NoError(t, Validate(protocol.TypeLbEndpoint, "", ep))
	require.NoError(t, Validate(protocol.TypeLbEndpoint, "xdstp://a/envoy.config.endpoint.v3.LbEndpoint/web/1", ep))
}

func TestValidateTypeMismatch(t *testing.T) {
	err := Validate(protocol.TypeListener, "web", staticCluster("web"))
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, ve.Reason, "envoy.config.cluster.v3.Cluster")

	err = Validate("type.googleapis.com/example.Unknown", "x", staticCluster("x"))
	require.Error(t, err)
	assert.Error(t, Validate(protocol.TypeCluster, "web", nil))
}

func TestSnakeField(t *testing.T) {
	for in, want := range map[string]string{
		"ConnectTimeout":       "connect_timeout",
		"FilterChains[3]":      "filter_chains[3]",
		"Http2ProtocolOptions": "http2_protocol_options",
		"TypedExtensionProtocolOptions[envoy.extensions.upstreams.http.v3.HttpProtocolOptions]": "typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions]",
		"": "",
	} {
		assert.Equal(t, want, snakeField(in), in)
	}
}

// Beyond the protos' constraints, what Envoy refuses when it loads a config: a
// regex RE2 does not compile, wherever a RegexMatcher is (an Any payload
// included), and virtual hosts of one route configuration sharing a name or a
// domain (case aside).
func TestValidateEnvoyChecks(t *testing.T) {
	const data = `"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: main
virtual_hosts:
- name: a
  domains: ["example.com", "*"]
  routes:
  - match: {safe_regex: {regex: "/api/(v1|v2"}}
    route: {cluster: web}
  - match:
      prefix: /
      headers:
      - name: x-user
        string_match: {safe_regex: {regex: "[a-z]+"}}
    route: {cluster: web}
- name: b
  domains: ["Example.com"]
  routes: [{match: {prefix: /}, route: {cluster: web}}]
- name: a
  domains: ["b.example.com"]
  routes: [{match: {prefix: /}, route: {cluster: web}}]
`
	_, err := Parse("routes.yaml", []byte(data))
	require.Error(t, err)
	assert.Equal(t, []string{
		`routes.yaml:7:26: resource #1 (RDS "main"): virtual_hosts[0].routes[0].match.safe_regex.regex: does not compile (RE2 syntax): missing closing ): ` + "`/api/(v1|v2`",
		`routes.yaml:16:13: resource #1 (RDS "main"): virtual_hosts[1].domains[0]: "Example.com" is also a domain of virtual_hosts[0]: a domain may be in one virtual host only`,
		`routes.yaml:18:3: resource #1 (RDS "main"): virtual_hosts[2].name: "a" is also the name of virtual_hosts[0]: names must be unique`,
	}, strings.Split(err.Error(), "\n"))

	fixed := strings.NewReplacer(`(v1|v2"`, `(v1|v2)"`, `"Example.com"`, `"c.example.com"`, "- name: a\n  domains: [\"b", "- name: c\n  domains: [\"b").Replace(data)
	rs, err := Parse("routes.yaml", []byte(fixed))
	require.NoError(t, err)
	assert.Len(t, rs, 1)

	// A regex in an extension's config, reached through an Any.
	const listener = `"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: edge
address: {socket_address: {address: 0.0.0.0, port_value: 80}}
filter_chains:
- filters:
  - name: hcm
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: in
      http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
      route_config:
        virtual_hosts:
        - name: all
          domains: ["*"]
          routes: [{match: {safe_regex: {regex: "a**"}}, route: {cluster: web}}]
`
	_, err = Parse("l.yaml", []byte(listener))
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), `l.yaml:15:42: resource #1 (LDS "edge"): filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match.safe_regex.regex: does not compile`), err.Error())
}
