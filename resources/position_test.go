package resources

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/protocol"
)

// A YAML syntax error is placed at file:line:col; an unclosed flow mapping is
// placed at its brace, not on the line before it (where the YAML parser's own
// message puts it).
func TestParseYAMLSyntaxPosition(t *testing.T) {
	const data = `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: {1s
  type: EDS
`
	_, err := Parse("c.yaml", []byte(data))
	le := loadErrors(t, err)[0]
	assert.Equal(t, `c.yaml:3:20: did not find expected ',' or '}': the { opened here is not closed`, le.Error())

	// The YAML parsers' lines are those of the context, or counted from 0, or
	// left out on the first line: each is at the line and column at fault.
	const cds = `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: api
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
`
	for _, tc := range []struct{ data, want string }{
		{cds + "  type: EDS\n  - name: x\n", `y.yaml:6:3: did not find expected key`},
		{cds + " type: EDS\n", `y.yaml:5:2: did not find expected '-' indicator`},
		{cds + "  type: EDS\n    lb_policy: RANDOM\n", `y.yaml:6:14: mapping values are not allowed in this context`},
		{cds + "  type: \"EDS\n", `y.yaml:5:9: found unexpected end of stream: the quote opened here is not closed`},
		{cds + "\ttype: EDS\n", `y.yaml:5:1: found a tab character that violates indentation: YAML indents with spaces, not tabs`},
		{"name: @web\n", "y.yaml:1:7: found character that cannot start any token: quote a value that starts with @"},
	} {
		_, err := Parse("y.yaml", []byte(tc.data))
		require.Error(t, err, tc.data)
		assert.Equal(t, tc.want, err.Error(), tc.data)
	}

	// A quote inside a plain scalar does not hide a bracket from the search.
	_, err = Parse("q.yaml", []byte("- description: it's\n  x: [1, 2\n- b: 3\n"))
	le = loadErrors(t, err)[0]
	assert.Equal(t, []int{2, 6}, []int{le.Line, le.Column})
}

// Unknown fields and invalid values point at the field, in YAML and JSON, with a
// "did you mean" for a near miss of a field of the message it is written in,
// nested Any payloads included.
func TestParseFieldPositions(t *testing.T) {
	for _, tc := range []struct {
		file, data, want string
	}{{
		file: "l.yaml",
		data: `"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: edge
filter_chains:
- filters:
  - name: hcm
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      statPrefx: in
`,
		want: `l.yaml:8:7: resource #1 (LDS "edge"): unknown field "statPrefx", did you mean "statPrefix"?`,
	}, {
		file: "c.yaml",
		data: `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
type: EDX
`,
		want: `c.yaml:3:7: resource #1 (CDS "web"): invalid value for enum field type: "EDX", did you mean "EDS"?`,
	}, {
		file: "c.yaml",
		data: `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
lb_policy: most_requests
`,
		want: `c.yaml:3:12: resource #1 (CDS "web"): invalid value for enum field lb_policy: "most_requests"`,
	}, {
		file: "c.yaml",
		data: `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
common_lb_config: {override_host_status: {statuses: [HEALTHY, UNHEALTY]}}
`,
		want: `c.yaml:3:63: resource #1 (CDS "web"): invalid value for enum field common_lb_config.override_host_status.statuses[1]: "UNHEALTY", did you mean "UNHEALTHY"?`,
	}, {
		file: "c.yaml",
		data: `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
load_assignment: {cluster_name: web, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: x, port_value: http}}}}]}]}
`,
		want: `c.yaml:3:129: resource #1 (CDS "web"): invalid value for uint32 field load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: "http"`,
	}, {
		// A wrapper written inline is named by its field, not its "value".
		file: "e.yaml",
		data: `"@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
cluster_name: web
endpoints: [{lb_endpoints: [{load_balancing_weight: three}]}]
`,
		want: `e.yaml:3:53: resource #1 (EDS "web"): invalid value for uint32 field endpoints[0].lb_endpoints[0].load_balancing_weight: "three"`,
	}, {
		// A JSON name the user wrote is named by its proto name.
		file: "c.json",
		data: `{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "web", "lbPolicy": "ROUND_ROBBIN"}`,
		want: `c.json:1:93: resource #1 (CDS "web"): invalid value for enum field lb_policy: "ROUND_ROBBIN", did you mean "ROUND_ROBIN"?`,
	}, {
		file: "c.yaml",
		data: `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
connect_timeout: 1m
`,
		want: `c.yaml:3:18: resource #1 (CDS "web"): connect_timeout: invalid google.protobuf.Duration value "1m": want seconds with an "s" suffix, like "1s" or "0.250s"`,
	}, {
		file: "c.yaml",
		data: `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
connect_timeout: 10
`,
		want: `c.yaml:3:18: resource #1 (CDS "web"): connect_timeout: invalid duration 10: want seconds with an "s" suffix, like "1s" or "0.250s"`,
	}, {
		file: "c.yaml",
		data: `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
completely_unrelated: 1
`,
		want: `c.yaml:3:1: resource #1 (CDS "web"): unknown field "completely_unrelated"`,
	}, {
		file: "c.json",
		data: `{
  "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  "name": "web",
  "connectTimeot": "1s"
}`,
		want: `c.json:4:3: resource #1 (CDS "web"): unknown field "connectTimeot", did you mean "connectTimeout"?`,
	}, {
		file: "c.json",
		data: `[{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "web",
  "connect_timeout": "-1s", "dns_lookup_family": "V4_ONLY", "lb_policy": 99}]`,
		want: `c.json:2:3: resource #1 (CDS "web"): connect_timeout: value must be greater than 0s` + "\n" +
			`c.json:2:61: resource #1 (CDS "web"): lb_policy: value must be one of the defined enum values`,
	}} {
		_, err := Parse(tc.file, []byte(tc.data))
		if tc.want == "" {
			assert.NoError(t, err, tc.data)
			continue
		}
		require.Error(t, err, tc.data)
		assert.Equal(t, tc.want, err.Error(), tc.data)
	}
}

// protojson sometimes writes a non-breaking space in its messages (so that
// callers do not match on them); messages have plain spaces only.
func TestCleanProtoError(t *testing.T) {
	msg, line, col := cleanProtoError(errors.New("proto:\u00a0(line 3:14): unknown field \"x\""))
	assert.Equal(t, `unknown field "x"`, msg)
	assert.Equal(t, []int{3, 14}, []int{line, col})
	msg, _, _ = cleanProtoError(errors.New("proto:\u00a0syntax error (line 1:2): unexpected\u00a0token"))
	assert.Equal(t, "syntax error: unexpected token", msg)

	le := &LoadError{File: "f.yaml", Line: 1, Err: errors.New("proto:\u00a0cannot parse invalid wire-format data")}
	assert.Equal(t, "f.yaml:1: proto: cannot parse invalid wire-format data", le.Error())
}

func TestSuggestField(t *testing.T) {
	md := discoveryResponse()
	assert.Equal(t, "version_info", suggestField(md, "versio_info"))
	assert.Equal(t, "typeUrl", suggestField(md, "typeURL"), "case does not count")
	assert.Equal(t, "", suggestField(md, "listeners"))
	assert.Equal(t, "", suggestField(nil, "x"))
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
}

// A file in Envoy's file-based xDS format, a DiscoveryResponse, is read as it
// is: its resources, with positions in the file.
func TestParseDiscoveryResponse(t *testing.T) {
	const yml = `version_info: "7"
type_url: type.googleapis.com/envoy.config.cluster.v3.Cluster
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: 1s
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: api
  connect_timeout: 0s
`
	_, err := Parse("cds.yaml", []byte(yml))
	assert.Equal(t, `cds.yaml:9:3: resource #2 (CDS "api"): connect_timeout: value must be greater than 0s`, err.Error())

	rs, err := Parse("cds.yaml", []byte(strings.Replace(yml, "0s", "2s", 1)))
	require.NoError(t, err)
	assert.Equal(t, []string{"CDS web", "CDS api"}, names(rs))

	const js = `{"versionInfo": "1", "resources": [
  {"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": "web"},
  {"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_nme": "api"}]}`
	_, err = Parse("eds.json", []byte(js))
	assert.Equal(t, `eds.json:3:83: resource #2 (EDS): unknown field "cluster_nme", did you mean "cluster_name"?`, err.Error())

	// type_url says what every resource is, as Envoy checks.
	_, err = Parse("cds.yaml", []byte(strings.Replace(yml, "cluster.v3.Cluster\nresources", "listener.v3.Listener\nresources", 1)))
	assert.Contains(t, err.Error(), `cds.yaml:4:3: resource #1 (CDS "web"): a CDS in a DiscoveryResponse whose type_url is type.googleapis.com/envoy.config.listener.v3.Listener`)

	_, err = Parse("cds.yaml", []byte("version_inf: 1\nresources: []\n"))
	assert.Equal(t, `cds.yaml:1:1: unknown field "version_inf" of a DiscoveryResponse (a file with version_info and resources), did you mean "version_info"?`, err.Error())

	rs, err = Parse("none.json", []byte(`{"version_info": "1", "resources": []}`))
	require.NoError(t, err)
	assert.Empty(t, rs)

	// A top-level "@type" of DiscoveryResponse is the same format.
	rs, err = Parse("cds.yaml", []byte(`"@type": type.googleapis.com/envoy.service.discovery.v3.DiscoveryResponse
`+strings.Replace(yml, "0s", "2s", 1)))
	require.NoError(t, err)
	assert.Equal(t, []string{"CDS web", "CDS api"}, names(rs))
	_, err = Parse("cds.yaml", []byte(`"@type": type.googleapis.com/envoy.service.discovery.v3.DiscoveryResponse
`+yml))
	require.Error(t, err)
	assert.Equal(t, `cds.yaml:10:3: resource #2 (CDS "api"): connect_timeout: value must be greater than 0s`, err.Error())
}

// A bootstrap is not resources: Parse says which kind it is.
func TestParseBootstrap(t *testing.T) {
	_, err := Parse("envoy.yaml", []byte(`static_resources:
  listeners: []
  clusters: []
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}}
`))
	var be *BootstrapError
	require.ErrorAs(t, err, &be)
	assert.False(t, be.Client)
	assert.Equal(t, []string{"static_resources", "admin"}, be.Fields)
	assert.True(t, strings.HasPrefix(err.Error(), "envoy.yaml:1:1: an Envoy static config (top-level static_resources, admin), not resources"), err.Error())

	// Static listeners whose routes come from a server: a client's.
	_, err = Parse("envoy.yaml", []byte(`static_resources:
  listeners:
  - name: l
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          rds: {route_config_name: r, config_source: {api_config_source: {api_type: GRPC}}}
`))
	require.ErrorAs(t, err, &be)
	assert.True(t, be.Client)

	raw, err := os.ReadFile(filepath.Join("..", "examples", "edge", "envoy.yaml"))
	require.NoError(t, err)
	_, err = Parse("envoy.yaml", raw)
	require.ErrorAs(t, err, &be)
	assert.True(t, be.Client, "it fetches its config from a server")
	assert.Contains(t, err.Error(), "an Envoy bootstrap")

	raw, err = os.ReadFile(filepath.Join("..", "examples", "grpc", "bootstrap.json"))
	require.NoError(t, err)
	_, err = Parse("bootstrap.json", raw)
	require.ErrorAs(t, err, &be)
	assert.True(t, be.Client)
	assert.Contains(t, err.Error(), "a gRPC xDS bootstrap")

	// A resource with a field named like a bootstrap's is a resource.
	rs, err := Parse("c.json", []byte(`{"@type": "`+protocol.TypeCluster+`", "name": "node", "connect_timeout": "1s"}`))
	require.NoError(t, err)
	assert.Len(t, rs, 1)
}

func TestSplitFieldPath(t *testing.T) {
	assert.Equal(t, []string{"filter_chains", "0", "filters", "1", "typed_config", "stat_prefix"},
		splitFieldPath("filter_chains[0].filters[1].typed_config.stat_prefix"))
	assert.Equal(t, []string{"typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "common_http_protocol_options"},
		splitFieldPath("typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions].common_http_protocol_options"))
	assert.Empty(t, splitFieldPath(""))
}

// jsonEntriesTo records the values down to a depth, and their places.
func TestJSONEntries(t *testing.T) {
	js := []byte(`{"a": [1, {"b\u0021": "x"}], "c": {"d": null}}`)
	all := jsonEntries(js)
	e, ok := jsonFind(all, []string{"a", "1", "b!"})
	require.True(t, ok)
	assert.Equal(t, `"x"`, string(js[e.valOff:e.valEnd]))
	path, value, ok := jsonPathAt(all, e.keyOff)
	assert.True(t, ok)
	assert.False(t, value)
	assert.Equal(t, []string{"a", "1", "b!"}, path)

	_, ok = jsonFind(all, []string{"c", "e"})
	assert.False(t, ok, "a missing field")

	top := jsonEntriesTo(js, 1)
	require.Len(t, top, 3, "the object and its two fields")
	assert.Equal(t, `{"d": null}`, string(js[top[2].valOff:top[2].valEnd]))
}

// A JSON syntax error is placed at the line and column of the byte at fault,
// also deep in a long list (where the decoder counts from the start of the
// element), and text after the document is placed, not given as an offset.
func TestParseJSONSyntaxPosition(t *testing.T) {
	// 200 clusters, one per line 2..201, in a list opened on line 1.
	var b strings.Builder
	b.WriteString("[\n")
	for i := range 200 {
		sep := ","
		if i == 199 {
			sep = ""
		}
		b.WriteString(`  {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c` + strconv.Itoa(i) + `"}` + sep + "\n")
	}
	b.WriteString("]\n")
	good := b.String()
	_, err := Parse("ok.json", []byte(good))
	require.NoError(t, err)
	lines := strings.Split(good, "\n")
	with := func(line int, edit func(string) string) string {
		l := slices.Clone(lines)
		l[line-1] = edit(l[line-1])
		return strings.Join(l, "\n")
	}

	for _, tc := range []struct {
		name, data, want string
	}{
		{"missing comma between elements", with(151, func(s string) string { return strings.TrimSuffix(s, ",") }),
			`c.json:152:3: expected comma after array element`},
		{"missing comma inside an element", with(120, func(s string) string { return strings.Replace(s, `", "name"`, `" "name"`, 1) }),
			`c.json:120:67: invalid character '"' after object key:value pair`},
		{"bad value in the first element", with(2, func(s string) string { return strings.Replace(s, `"c0"`, `c0`, 1) }),
			`c.json:2:76: invalid character 'c' looking for beginning of value`},
		{"text after the list", good + "x\n", `c.json:203:1: unexpected data after the end of the JSON document`},
		{"a second list after the list", strings.TrimSuffix(good, "\n") + " []", `c.json:202:3: unexpected data after the end of the JSON document`},
		{"a truncated list", good[:len(good)-3], `c.json:201:`},
		{"a bad single object", "{\n  \"@type\": \"x\",\n  \"name\" \"web\"\n}\n", `c.json:3:10: invalid character '"' after object key`},
	} {
		_, err := Parse("c.json", []byte(tc.data))
		require.Error(t, err, tc.name)
		assert.True(t, strings.HasPrefix(err.Error(), tc.want), "%s: got %q, want %q", tc.name, err.Error(), tc.want)
	}
}

// A key written twice in one YAML mapping is an error at the second one, at
// any depth; the same key in two mappings is not.
func TestParseYAMLDuplicateKey(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  connect_timeout: 1s
  type: EDS
  connect_timeout: 2s
`, `d.yaml:5:3: duplicate key "connect_timeout" (first at line 3)`},
		{`- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: web
  eds_cluster_config:
    service_name: a
    service_name: b
`, `d.yaml:5:5: duplicate key "service_name" (first at line 4)`},
		{`- {"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: a, name: b}
`, `d.yaml:1:75: duplicate key "name" (first at line 1)`},
	} {
		_, err := Parse("d.yaml", []byte(tc.data))
		require.Error(t, err, tc.data)
		assert.Equal(t, tc.want, err.Error())
	}
	_, err := Parse("d.yaml", []byte(`- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: a
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: b
`))
	assert.NoError(t, err)
}
