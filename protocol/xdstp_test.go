package protocol_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/leanxds/leanxds/protocol"
)

// X1: context parameters compare equal whatever their order.
func TestX1NormalizeName(t *testing.T) {
	a := protocol.NormalizeName("xdstp://auth/envoy.config.cluster.v3.Cluster/c1?b=2&a=1")
	b := protocol.NormalizeName("xdstp://auth/envoy.config.cluster.v3.Cluster/c1?a=1&b=2")
	assert.Equal(t, a, b)
	assert.Equal(t, "xdstp://auth/envoy.config.cluster.v3.Cluster/c1?a=1&b=2", a)
	assert.Equal(t, "plain-name", protocol.NormalizeName("plain-name"))
	assert.Equal(t, "plain?b=2&a=1", protocol.NormalizeName("plain?b=2&a=1"), "only xdstp names have parameters")
	assert.Equal(t, "xdstp://auth/t/id", protocol.NormalizeName("xdstp://auth/t/id"))
	assert.NotEqual(t, protocol.NormalizeName("xdstp://auth/t/id?a=1"), protocol.NormalizeName("xdstp://auth/t/id?a=2"))
}

// X1, X4: parameters are sorted as written, never unescaped or escaped again, so
// a name whose parameters are in order is its own normal form, byte for byte.
func TestX1X4NormalizeNameKeepsSpelling(t *testing.T) {
	const base = "xdstp://auth/envoy.config.cluster.v3.Cluster/c"
	for _, tc := range []struct{ name, want string }{
		// In order already: the name as it is.
		{base + "?node.addr=10.0.0.1:8080", base + "?node.addr=10.0.0.1:8080"},
		{base + "?path=x/y", base + "?path=x/y"},
		{base + "?who=a b", base + "?who=a b"},
		{base + "?a", base + "?a"},
		{base + "?a&b=1", base + "?a&b=1"},
		{base + "?node.addr=10.0.0.1%3A8080", base + "?node.addr=10.0.0.1%3A8080"},
		// Out of order: sorted, each pair's bytes kept.
		{base + "?z=x/y&node.addr=10.0.0.1:8080&a", base + "?a&node.addr=10.0.0.1:8080&z=x/y"},
		{base + "?who=a b&b", base + "?b&who=a b"},
		// By key first: "a.b" sorts after "a" although "a.b=1" < "a=1" as bytes.
		{base + "?a.b=1&a=1", base + "?a=1&a.b=1"},
		// One key with several values: by the whole pair.
		{base + "?a=2&a=1", base + "?a=1&a=2"},
		// Empty pairs are dropped; so is a query that holds nothing else.
		{base + "?b=2&&a=1&", base + "?a=1&b=2"},
		{base + "?", base},
		{base + "?&", base},
	} {
		assert.Equal(t, tc.want, protocol.NormalizeName(tc.name), tc.name)
		assert.Equal(t, tc.want, protocol.NormalizeName(tc.want), "X1: a normal form is its own normal form")
	}
}

// A name in normal form, the common case, costs no allocation.
func TestNormalizeNameInOrderAllocatesNothing(t *testing.T) {
	name := "xdstp://auth/envoy.config.cluster.v3.Cluster/c?a=1&b=x/y&node.addr=10.0.0.1:8080"
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = protocol.NormalizeName(name) }))
}

// X2: a glob collection matches the resources directly under its prefix with the
// same context parameters.
func TestX2Glob(t *testing.T) {
	g, ok := protocol.ParseGlob("xdstp://auth/envoy.config.cluster.v3.Cluster/group/*?z=1&a=2")
	assert.True(t, ok)
	n := protocol.NormalizeName
	assert.True(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a=2&z=1")))
	assert.True(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?z=1&a=2")))
	assert.False(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1")), "other parameters")
	assert.False(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/sub/c1?a=2&z=1")), "not directly under")
	assert.False(t, g.Matches(n("xdstp://other/envoy.config.cluster.v3.Cluster/group/c1?a=2&z=1")), "other authority")
	_, ok = protocol.ParseGlob("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1")
	assert.False(t, ok)
	_, ok = protocol.ParseGlob("group/*")
	assert.False(t, ok)
}

// X2, X4: a glob's parameters are compared as written, like any name's.
func TestX2GlobRawParams(t *testing.T) {
	g, ok := protocol.ParseGlob("xdstp://auth/envoy.config.cluster.v3.Cluster/group/*?node.addr=10.0.0.1:8080&a")
	assert.True(t, ok)
	n := protocol.NormalizeName
	assert.True(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a&node.addr=10.0.0.1:8080")))
	assert.False(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a&node.addr=10.0.0.2:8080")), "other value")
}
