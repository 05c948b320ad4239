package admin

import (
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func metaMatch(v *matcherv3.ValueMatcher, path ...string) *matcherv3.StructMatcher {
	m := &matcherv3.StructMatcher{Value: v}
	for _, p := range path {
		m.Path = append(m.Path, &matcherv3.StructMatcher_PathSegment{Segment: &matcherv3.StructMatcher_PathSegment_Key{Key: p}})
	}
	return m
}

func stringValue(s *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: s}}
}

func TestMatchNode(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{
		"zone":   "z1",
		"canary": true,
		"shard":  3.0,
		"labels": map[string]any{"app": "Edge"},
		"tags":   []any{"a", "b"},
	})
	require.NoError(t, err)
	n := &corev3.Node{Id: "envoy-1", Metadata: md}

	cases := []struct {
		name string
		ms   []*matcherv3.NodeMatcher
		want bool
	}{
		{"no matcher matches all", nil, true},
		{"exact id", []*matcherv3.NodeMatcher{{NodeId: exact("envoy-1")}}, true},
		{"other id", []*matcherv3.NodeMatcher{{NodeId: exact("envoy-2")}}, false},
		{"matchers are ORed", []*matcherv3.NodeMatcher{{NodeId: exact("envoy-2")}, {NodeId: exact("envoy-1")}}, true},
		{"prefix ignoring case", []*matcherv3.NodeMatcher{{NodeId: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "ENVOY-"}, IgnoreCase: true}}}, true},
		{"regex matches the whole id", []*matcherv3.NodeMatcher{{NodeId: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "envoy"}}}}}, false},
		{"regex", []*matcherv3.NodeMatcher{{NodeId: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "envoy-[0-9]+"}}}}}, true},
		{"metadata string", []*matcherv3.NodeMatcher{{NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(stringValue(exact("z1")), "zone")}}}, true},
		{"metadata nested path", []*matcherv3.NodeMatcher{{NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(stringValue(exact("Edge")), "labels", "app")}}}, true},
		{"id and metadata must both match", []*matcherv3.NodeMatcher{{NodeId: exact("envoy-1"), NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(stringValue(exact("z2")), "zone")}}}, false},
		{"bool", []*matcherv3.NodeMatcher{{NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_BoolMatch{BoolMatch: true}}, "canary")}}}, true},
		{"double range", []*matcherv3.NodeMatcher{{NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_DoubleMatch{DoubleMatch: &matcherv3.DoubleMatcher{
				MatchPattern: &matcherv3.DoubleMatcher_Exact{Exact: 3}}}}, "shard")}}}, true},
		{"present", []*matcherv3.NodeMatcher{{NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}, "nope")}}}, false},
		{"absent", []*matcherv3.NodeMatcher{{NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: false}}, "nope")}}}, true},
		{"list one_of", []*matcherv3.NodeMatcher{{NodeMetadatas: []*matcherv3.StructMatcher{
			metaMatch(&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
				MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: stringValue(exact("b"))}}}}, "tags")}}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := newNodeMatchers(c.ms).match(n)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}

	_, err = newNodeMatchers([]*matcherv3.NodeMatcher{{NodeId: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}}).match(n)
	assert.ErrorContains(t, err, "safe_regex")
}

// A request's regex is compiled once, not once per node: matching a thousand
// nodes against a safe_regex allocates about what matching them against an
// exact id does, one compilation more.
func TestMatchNodeCompilesRegexOnce(t *testing.T) {
	var nodes []*corev3.Node
	for i := range 1000 {
		nodes = append(nodes, &corev3.Node{Id: fmt.Sprintf("envoy-%04d", i)})
	}
	allocs := func(m *matcherv3.StringMatcher, nodes []*corev3.Node) float64 {
		return testing.AllocsPerRun(3, func() {
			nm := newNodeMatchers([]*matcherv3.NodeMatcher{{NodeId: m}})
			for _, n := range nodes {
				if _, err := nm.match(n); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	regex := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: `envoy-00[0-9]+`}}}
	byExact := allocs(exact("envoy-0042"), nodes)
	oneByRegex := allocs(regex, nodes[:1])
	byRegex := allocs(regex, nodes)
	t.Logf("allocations for 1000 nodes: %.0f by exact id, %.0f by regex (%.0f for one node)", byExact, byRegex, oneByRegex)
	// Compiling for each node costs tens of allocations per node; matching,
	// none (but for the race detector, which makes sync.Pool drop some).
	assert.Less(t, byRegex, byExact+oneByRegex+float64(len(nodes)))
}
