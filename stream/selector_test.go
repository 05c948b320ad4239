package stream_test

import (
	"fmt"
	"hash/fnv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/leanxds/leanxds/stream"
)

// Bucket is FNV-1a 64 of the id modulo Buckets (part of the contract: every
// replica and release picks the same share), and a share of p% keeps the
// buckets below p×100, so a smaller share is within a larger one.
func TestBucketIsFNV1aAndSharesNest(t *testing.T) {
	in1, in10 := 0, 0
	for i := range 5000 {
		id := fmt.Sprintf("envoy-%d.edge.example", i)
		h := fnv.New64a()
		_, _ = h.Write([]byte(id))
		assert.Equal(t, int(h.Sum64()%stream.Buckets), stream.Bucket(id), id)

		n := &corev3.Node{Id: id}
		one, ten := (&stream.Selector{Percent: 1}).Matches("s", n), (&stream.Selector{Percent: 10}).Matches("s", n)
		if one {
			in1++
			assert.True(t, ten, "%s is in 1%% but not in 10%%", id)
		}
		if ten {
			in10++
		}
		assert.True(t, (&stream.Selector{Percent: 100}).Matches("s", n))
	}
	assert.InDelta(t, 50, in1, 30, "about 1% of 5,000 ids")
	assert.InDelta(t, 500, in10, 100, "about 10% of 5,000 ids")
	assert.Zero(t, testing.AllocsPerRun(100, func() { stream.Bucket("envoy-1.edge.example") }))
}

func TestSelectorMatches(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{
		"group": "canary", "weight": 2.5, "on": true, "zone": map[string]any{"name": "eu-1"},
	})
	assert.NoError(t, err)
	n := &corev3.Node{Id: "a", Metadata: md}
	for _, c := range []struct {
		sel  stream.Selector
		want bool
	}{
		{stream.Selector{}, true},
		{stream.Selector{Scope: "edge"}, true},
		{stream.Selector{Scope: "core"}, false},
		{stream.Selector{IDs: []string{"b", "a"}}, true},
		{stream.Selector{IDs: []string{"b"}}, false},
		{stream.Selector{Metadata: map[string]string{"group": "canary"}}, true},
		{stream.Selector{Metadata: map[string]string{"group": "stable"}}, false},
		{stream.Selector{Metadata: map[string]string{"weight": "2.5", "on": "true"}}, true},
		{stream.Selector{Metadata: map[string]string{"zone.name": "eu-1"}}, true},
		{stream.Selector{Metadata: map[string]string{"zone.name.x": "eu-1"}}, false},
		{stream.Selector{Metadata: map[string]string{"missing": ""}}, false},
		{stream.Selector{Scope: "edge", IDs: []string{"a"}, Metadata: map[string]string{"group": "stable"}}, false},
	} {
		assert.Equal(t, c.want, c.sel.Matches("edge", n), c.sel.String())
	}
	weighed := stream.Selector{Metadata: map[string]string{"weight": "2.5", "zone.name": "eu-1"}}
	assert.Zero(t, testing.AllocsPerRun(100, func() { weighed.Matches("edge", n) }))
	assert.Equal(t, "all nodes", (&stream.Selector{}).String())
	assert.Equal(t, "scope=edge ids=a,b metadata.group=canary 10%", (&stream.Selector{Scope: "edge", IDs: []string{"a", "b"}, Metadata: map[string]string{"group": "canary"}, Percent: 10}).String())
	assert.Error(t, (&stream.Selector{Percent: 101}).Validate())
	assert.Error(t, (&stream.Selector{Metadata: map[string]string{"a..b": "x"}}).Validate())
	assert.NoError(t, (&stream.Selector{Percent: 50, Metadata: map[string]string{"zone.name": "x"}}).Validate())
}
