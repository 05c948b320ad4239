package main

import (
	"bytes"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/stream"
)

// The operating limits are flags with LEANXDS_* variables, whose defaults are
// the library's; each must be positive.
func TestLimitFlags(t *testing.T) {
	c, o := serveCommand(&bytes.Buffer{})
	require.NoError(t, c.parse(nil, func(string) (string, bool) { return "", false }))
	assert.Equal(t, stream.Limits{
		MaxNameBytes:        stream.DefaultMaxNameBytes,
		MaxRequestNameBytes: stream.DefaultMaxRequestNameBytes,
		MaxNodeBytes:        stream.DefaultMaxNodeBytes,
	}, o.limits())
	assert.Equal(t, stream.DefaultFrameCacheBytes, o.frameCacheBytes)

	env := map[string]string{"LEANXDS_MAX_NAME_BYTES": "512", "LEANXDS_MAX_NODE_BYTES": "65536", "LEANXDS_FRAME_CACHE_BYTES": "1048576"}
	c, o = serveCommand(&bytes.Buffer{})
	require.NoError(t, c.parse([]string{"--max-request-name-bytes", "100000", "--max-name-bytes", "256"},
		func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	assert.Equal(t, stream.Limits{MaxNameBytes: 256, MaxRequestNameBytes: 100000, MaxNodeBytes: 65536}, o.limits())
	assert.Equal(t, 1<<20, o.frameCacheBytes)

	for _, f := range []string{"max-name-bytes", "max-request-name-bytes", "max-node-bytes", "frame-cache-bytes"} {
		code, _, stderr := runArgs(t, nil, "serve", "--config", "x", "--"+f, "0")
		assert.Equal(t, 2, code, f)
		assert.Contains(t, stderr, "must be positive", f)
	}
	_, help, _ := runArgs(t, nil, "serve", "--help")
	for _, f := range []string{"max-name-bytes", "max-request-name-bytes", "max-node-bytes", "frame-cache-bytes"} {
		assert.Regexp(t, `(?m)^  --`+f+` bytes$`, help)
		assert.Contains(t, help, "$"+envName(f))
	}
}

// serve applies the limits: a name or a node over them ends its stream with
// InvalidArgument naming the limit, and CSDS shows what a stream keeps of its
// node (not the extensions an Envoy lists).
func TestLimitsServed(t *testing.T) {
	ts := startTestServer(t, copyExample(t, "edge"), func(o *serveOptions) {
		o.maxNameBytes, o.maxRequestNameBytes, o.maxNodeBytes = 16, 1000, 4096
	})
	long := conv.ADS(t, ts.cc, node("long", "edge"))
	long.Request(protocol.TypeEndpoint, strings.Repeat("x", 17))
	assert.Contains(t, long.ExpectError(codes.InvalidArgument).Error(), "limit of 16 bytes per name")

	big := node("big", "edge")
	big.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"blob": structpb.NewStringValue(strings.Repeat("x", 5000))}}
	refused := conv.ADS(t, ts.cc, big)
	refused.Request(protocol.TypeCluster)
	assert.Contains(t, refused.ExpectError(codes.InvalidArgument).Error(), "limit of 4096 bytes per node")

	envoy := node("envoy-1", "edge")
	envoy.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"team": structpb.NewStringValue("edge")}}
	envoy.UserAgentName = "envoy"
	for i := range 10 {
		envoy.Extensions = append(envoy.Extensions, &corev3.Extension{Name: "envoy.filters.http.router", Category: "envoy.filters.http", TypeUrls: []string{strings.Repeat("t", i)}})
	}
	c := conv.ADS(t, ts.cc, envoy)
	c.Request(protocol.TypeCluster).ExpectResponse()
	var got *corev3.Node
	eventually(t, "the stream in CSDS", func() bool {
		for _, cc := range fetchStatus(t, ts.cc).GetConfig() {
			if cc.GetNode().GetId() == "envoy-1" {
				got = cc.GetNode()
			}
		}
		return got != nil
	})
	want := &corev3.Node{Id: "envoy-1", Cluster: "edge", Metadata: envoy.Metadata, UserAgentName: "envoy"}
	assert.True(t, proto.Equal(want, got), "CSDS shows %v", got)
}
