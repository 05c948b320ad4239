package stream_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/stream"
)

// StreamInfo carries the whole node of the first request, metadata included, in
// the hooks and in Streams: CSDS node matchers and debug pages need more than the
// id and cluster.
func TestStreamInfoCarriesNode(t *testing.T) {
	opened := make(chan stream.StreamInfo, 1)
	e := newEnv(t, func(o *stream.Options) {
		o.Hooks.StreamOpened = func(i stream.StreamInfo) { opened <- i }
	})
	e.commit(t, clusters("a")...)
	n := &corev3.Node{Id: "envoy-1", Cluster: scope, Metadata: mustStruct(t, map[string]any{"zone": "z1"})}
	c := conv.ADS(t, e.cc, n)
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))

	info := <-opened
	require.NotNil(t, info.Node)
	assert.Equal(t, "z1", info.Node.GetMetadata().GetFields()["zone"].GetStringValue())
	st := e.status(t, "envoy-1", nil)
	require.NotNil(t, st.Node)
	assert.Equal(t, "z1", st.Node.GetMetadata().GetFields()["zone"].GetStringValue())
}
