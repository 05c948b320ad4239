package rollout

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/leanxds/leanxds/stream"
)

// matcher is a stream.Selector compiled for the Router's hot path: it answers
// Selector.Matches without allocating (a stream asks on every read of the
// store).
type matcher struct {
	scope string
	ids   []string
	md    []fieldMatch
	// below keeps the nodes whose bucket (stream.Bucket) is below it; < 0
	// keeps every node.
	below float64
}

// fieldMatch is one metadata field a node must have, its dotted key split.
type fieldMatch struct {
	path []string
	want string
}

func compile(s stream.Selector) matcher {
	m := matcher{scope: s.Scope, ids: s.IDs, below: -1}
	for k, v := range s.Metadata {
		m.md = append(m.md, fieldMatch{path: strings.Split(k, "."), want: v})
	}
	if s.Percent > 0 && s.Percent < 100 {
		m.below = s.Percent * stream.Buckets / 100 // as Selector.Matches computes it
	}
	return m
}

// matches is stream.Selector.Matches.
func (m *matcher) matches(scope string, node *corev3.Node) bool {
	if m.scope != "" && m.scope != scope {
		return false
	}
	id := node.GetId()
	if len(m.ids) > 0 {
		found := false
		for _, x := range m.ids {
			if x == id {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for i := range m.md {
		if !m.md[i].matches(node.GetMetadata()) {
			return false
		}
	}
	if m.below >= 0 && float64(stream.Bucket(id)) >= m.below {
		return false
	}
	return true
}

// needsNode reports whether the matcher reads more of a node than its id.
func (m *matcher) needsNode() bool { return len(m.md) > 0 }

func (f *fieldMatch) matches(md *structpb.Struct) bool {
	var v *structpb.Value
	for _, seg := range f.path {
		if md == nil {
			return false
		}
		v = md.GetFields()[seg]
		md = v.GetStructValue()
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue == f.want
	case *structpb.Value_NumberValue:
		var buf [32]byte
		return string(strconv.AppendFloat(buf[:0], k.NumberValue, 'g', -1, 64)) == f.want
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue) == f.want
	}
	return false
}

// anyMatches reports whether one of ms selects the node: stages are
// cumulative, so a stage serves the nodes of every stage up to it.
func anyMatches(ms []matcher, scope string, node *corev3.Node) bool {
	for i := range ms {
		if ms[i].matches(scope, node) {
			return true
		}
	}
	return false
}
