package resources

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
)

// loadErrors returns the *LoadErrors err is made of.
func loadErrors(t *testing.T, err error) []*LoadError {
	t.Helper()
	require.Error(t, err)
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*LoadError
		for _, e := range j.Unwrap() {
			out = append(out, loadErrors(t, e)...)
		}
		return out
	}
	var le *LoadError
	require.ErrorAs(t, err, &le)
	return []*LoadError{le}
}

func names(rs []Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, protocol.Short(r.TypeURL)+" "+r.Name)
	}
	return out
}

func TestLoadYAMLOneResource(t *testing.T) {
	rs, err := Load("testdata/cluster.yaml")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, protocol.TypeCluster, rs[0].TypeURL)
	assert.Equal(t, "web", rs[0].Name)
	c, ok := rs[0].Message.(*clusterv3.Cluster)
	require.True(t, ok)
	assert.Equal(t, int64(1), c.GetConnectTimeout().GetSeconds())
	assert.Equal(t, clusterv3.Cluster_EDS, c.GetType())
}

func TestLoadYAMLList(t *testing.T) {
	rs, err := Load("testdata/edge.yaml")
	require.NoError(t, err)
	assert.Equal(t, []string{
		"LDS edge", "RDS main", "CDS web", "EDS web",
		"LEDS xdstp://example/envoy.config.endpoint.v3.LbEndpoint/web/10.0.0.2",
	}, names(rs))

	// Nested Anys were resolved, so references can be read.
	assert.Equal(t, Refs{Routes: []string{"main"}}, References(rs[0].TypeURL, rs[0].Message))
	ep, ok := rs[4].Message.(*endpointv3.LbEndpoint)
	require.True(t, ok, "the wrapper is unwrapped")
	assert.Equal(t, "10.0.0.2", ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
}

func TestLoadJSONList(t *testing.T) {
	rs, err := Load("testdata/edge.json")
	require.NoError(t, err)
	assert.Equal(t, []string{"CDS web", "SDS cert"}, names(rs), "JSON field names or proto names, as protojson reads them")
}

func TestParseEmptyFile(t *testing.T) {
	for _, f := range []struct{ path, data string }{
		{"empty.yaml", ""},
		{"comments.yml", "# nothing yet\n"},
		{"doc.yaml", "---\n"},
		{"empty.json", " \n"},
		{"null.json", "null"},
	} {
		rs, err := Parse(f.path, []byte(f.data))
		require.NoError(t, err, f.path)
		assert.Empty(t, rs, f.path)
	}
}

func TestParseUnknownType(t *testing.T) {
	const data = `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: 1s
- "@type": type.googleapis.com/envoy.config.cluster.v3.Clusters
  name: api
`
	_, err := Parse("conf/bad.yaml", []byte(data))
	les := loadErrors(t, err)
	require.Len(t, les, 1)
	le := les[0]
	assert.Equal(t, 2, le.Index)
	assert.Equal(t, 4, le.Line)
	assert.Equal(t, 3, le.Column)
	assert.Equal(t, "api", le.Name)
	assert.True(t, strings.HasPrefix(le.Error(), `conf/bad.yaml:4:3: resource #2 ("api"): unknown resource type "type.googleapis.com/envoy.config.cluster.v3.Clusters"`), le.Error())
	assert.Contains(t, le.Error(), "CDS, EDS", "the served types are listed")
}

func TestParseMissingType(t *testing.T) {
	_, err := Parse("bad.json", []byte(`{"name": "web", "connect_timeout": "1s"}`))
	le := loadErrors(t, err)[0]
	assert.Equal(t, 1, le.Index)
	assert.Contains(t, le.Error(), `bad.json:1:1: resource #1 ("web"): missing "@type"`)
}

func TestParseBadFieldYAML(t *testing.T) {
	const data = `# two clusters
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: api
  connect_timeout: 1s

- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  conect_timeout: 1s
`
	_, err := Parse("conf/clusters.yaml", []byte(data))
	le := loadErrors(t, err)[0]
	assert.Equal(t, "conf/clusters.yaml", le.File)
	assert.Equal(t, 2, le.Index)
	assert.Equal(t, []int{8, 3}, []int{le.Line, le.Column}, "the line and column of the field")
	assert.Equal(t, `conf/clusters.yaml:8:3: resource #2 (CDS "web"): unknown field "conect_timeout", did you mean "connect_timeout"?`, le.Error())
}

func TestParseBadFieldJSON(t *testing.T) {
	const data = `[
  {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "api"},
  {
    "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "name": "web",
    "connect_timeout": 5
  }
]`
	_, err := Parse("clusters.json", []byte(data))
	le := loadErrors(t, err)[0]
	assert.Equal(t, 2, le.Index)
	assert.Equal(t, `clusters.json:6:24: resource #2 (CDS "web"): connect_timeout: invalid duration 5: want seconds with an "s" suffix, like "1s" or "0.250s"`, le.Error(),
		"the position of the value in the file, given once")
}

func TestParseBadNestedType(t *testing.T) {
	const data = `"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: edge
filter_chains:
- filters:
  - name: custom
    typed_config:
      "@type": type.googleapis.com/example.filters.v1.Custom
`
	_, err := Parse("edge.yaml", []byte(data))
	le := loadErrors(t, err)[0]
	assert.Equal(t, []int{7, 16}, []int{le.Line, le.Column}, "the nested type URL")
	assert.Contains(t, le.Error(), "example.filters.v1.Custom")
}

func TestParseDuplicates(t *testing.T) {
	const data = `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: 1s
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: web
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: 2s
`
	rs, err := Parse("dup.yaml", []byte(data))
	assert.Nil(t, rs, "a file is read whole or not at all")
	les := loadErrors(t, err)
	require.Len(t, les, 1, "a cluster and its endpoints may share a name")
	assert.Equal(t, `dup.yaml:6:3: resource #3 (CDS "web"): same type and name as resource #1 (line 1)`, les[0].Error())
}

func TestParseInvalidResource(t *testing.T) {
	const data = `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: api
  connect_timeout: 1s
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: -1s
  lb_policy: 99
`
	_, err := Parse("clusters.yaml", []byte(data))
	les := loadErrors(t, err)
	require.Len(t, les, 2, "one error per violation")
	assert.Equal(t, 2, les[0].Index)
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "connect_timeout", ve.Field)
	assert.Equal(t, `clusters.yaml:6:3: resource #2 (CDS "web"): connect_timeout: value must be greater than 0s`+"\n"+
		`clusters.yaml:7:3: resource #2 (CDS "web"): lb_policy: value must be one of the defined enum values`, err.Error(),
		"each at its field's line")
}

func TestParseInvalidNestedResource(t *testing.T) {
	const data = `"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: edge
address: {socket_address: {address: 0.0.0.0, port_value: 80}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      rds: {route_config_name: main, config_source: {ads: {}}}
`
	_, err := Parse("edge.yaml", []byte(data))
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "filter_chains[0].filters[0].typed_config.stat_prefix", ve.Field)
	assert.Contains(t, err.Error(), `edge.yaml:7:5: resource #1 (LDS "edge"): filter_chains[0].filters[0].typed_config.stat_prefix: `,
		"a field that is missing is placed at the nearest field written: the typed config")
}

func TestParseWrapper(t *testing.T) {
	// A wrapper names a resource that has a name of its own too; both must agree.
	const named = `"@type": type.googleapis.com/envoy.service.discovery.v3.Resource
name: api
resource:
  "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: 1s
`
	_, err := Parse("w.yaml", []byte(named))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `w.yaml:5:3: resource #1 (CDS "api"): name: is "web", but the resource is served as "api"`)

	const bare = `"@type": type.googleapis.com/envoy.config.endpoint.v3.LbEndpoint
endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
`
	_, err = Parse("ep.yaml", []byte(bare))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ep.yaml:1:1: resource #1 (LEDS): an LbEndpoint has no name field")

	const notServed = `"@type": type.googleapis.com/envoy.service.discovery.v3.Resource
name: x
resource:
  "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`
	_, err = Parse("w.yaml", []byte(notServed))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown resource type "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"`)

	_, err = Parse("w.yaml", []byte(`{"@type": "type.googleapis.com/envoy.service.discovery.v3.Resource", "name": "x"}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"resource" has no "@type"`)
}

func TestParseFileErrors(t *testing.T) {
	_, err := Parse("clusters.txt", nil)
	le := loadErrors(t, err)[0]
	assert.Equal(t, 0, le.Index)
	assert.Contains(t, le.Error(), `clusters.txt: file extension ".txt"`)

	_, err = Parse("two.yaml", []byte("\"@type\": a\n---\n\"@type\": b\n"))
	le = loadErrors(t, err)[0]
	assert.Contains(t, le.Error(), "second YAML document")

	_, err = Parse("syntax.yaml", []byte("- a: [1, 2\n- b: 3\n"))
	le = loadErrors(t, err)[0]
	assert.Equal(t, `syntax.yaml:1:6: did not find expected ',' or ']': the [ opened here is not closed`, le.Error())

	_, err = Parse("syntax.json", []byte("[\n{\"@type\": \"x\"},\n{\"@type\" \"x\"}\n]"))
	le = loadErrors(t, err)[0]
	assert.Equal(t, 3, le.Line)
	assert.Positive(t, le.Column)

	_, err = Parse("scalar.json", []byte(`"web"`))
	assert.Contains(t, loadErrors(t, err)[0].Error(), "not a string")

	_, err = Parse("items.json", []byte(`[1]`))
	assert.Contains(t, loadErrors(t, err)[0].Error(), "items.json:1:2: resource #1: not an object")

	_, err = Load("testdata/does-not-exist.yaml")
	assert.True(t, errors.Is(err, fs.ErrNotExist))
}

func TestParseReportsEveryBadResource(t *testing.T) {
	const data = `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: a
  connect_timeout: -1s
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: b
  connect_timeout: 1s
- name: c
`
	_, err := Parse("x.yaml", []byte(data))
	les := loadErrors(t, err)
	require.Len(t, les, 2)
	assert.Equal(t, []int{1, 3}, []int{les[0].Index, les[1].Index})
	assert.Equal(t, []int{3, 7}, []int{les[0].Line, les[1].Line}, "the bad field of #1, #3 as a whole")
}

func TestParsedMessagesAreTyped(t *testing.T) {
	rs, err := Parse("l.json", []byte(`{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l",
	  "address": {"socket_address": {"address": "::", "port_value": 1}}}`))
	require.NoError(t, err)
	_, ok := rs[0].Message.(*listenerv3.Listener)
	assert.True(t, ok)
}
