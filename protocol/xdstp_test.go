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
	assert.Equal(t, "xdstp://auth/t/id", protocol.NormalizeName("xdstp://auth/t/id"))
	assert.NotEqual(t, protocol.NormalizeName("xdstp://auth/t/id?a=1"), protocol.NormalizeName("xdstp://auth/t/id?a=2"))
}

// X2: a glob collection matches the resources directly under its prefix with the
// same context parameters.
func TestX2Glob(t *testing.T) {
	g, ok := protocol.ParseGlob("xdstp://auth/envoy.config.cluster.v3.Cluster/group/*?z=1&a=2")
	assert.True(t, ok)
	n := protocol.NormalizeName
	assert.True(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a=2&z=1")))
	assert.False(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1")), "other parameters")
	assert.False(t, g.Matches(n("xdstp://auth/envoy.config.cluster.v3.Cluster/group/sub/c1?a=2&z=1")), "not directly under")
	assert.False(t, g.Matches(n("xdstp://other/envoy.config.cluster.v3.Cluster/group/c1?a=2&z=1")), "other authority")
	_, ok = protocol.ParseGlob("xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1")
	assert.False(t, ok)
	_, ok = protocol.ParseGlob("group/*")
	assert.False(t, ok)
}
