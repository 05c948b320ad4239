package xdstest

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Any packs m in an Any, panicking if it cannot be marshalled. It is meant for
// fixtures only, where m is always a well-formed message.
func Any(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("xdstest: packing %T in an Any: %v", m, err))
	}
	return a
}

// adsSource is the config source of every dynamic resource the fixtures
// reference: the aggregated stream the client already has open, speaking v3.
// grpc-go accepts only ads or self here.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
