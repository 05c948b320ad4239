package main

import (
	"fmt"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// matchNode reports whether a node matches a CSDS request's node matchers: any
// of them (they are ORed, as csds.proto says); no matcher matches every node.
// Within one matcher the node id and every metadata matcher must match. An error
// names a matcher leanxds cannot evaluate (a custom string matcher, a bad regex).
func matchNode(ms []*matcherv3.NodeMatcher, n *corev3.Node) (bool, error) {
	if len(ms) == 0 {
		return true, nil
	}
	for _, m := range ms {
		ok, err := matchOne(m, n)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func matchOne(m *matcherv3.NodeMatcher, n *corev3.Node) (bool, error) {
	if m.GetNodeId() != nil {
		ok, err := matchString(m.GetNodeId(), n.GetId())
		if err != nil || !ok {
			return false, err
		}
	}
	for _, sm := range m.GetNodeMetadatas() {
		ok, err := matchStruct(sm, n.GetMetadata())
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func matchString(m *matcherv3.StringMatcher, s string) (bool, error) {
	fold := func(x string) string { return x }
	if m.GetIgnoreCase() {
		fold = strings.ToLower
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return fold(s) == fold(p.Exact), nil
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(fold(s), fold(p.Prefix)), nil
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(fold(s), fold(p.Suffix)), nil
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(fold(s), fold(p.Contains)), nil
	case *matcherv3.StringMatcher_SafeRegex:
		// Envoy's safe_regex must match the whole string.
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return false, fmt.Errorf("safe_regex %q: %w", p.SafeRegex.GetRegex(), err)
		}
		return re.MatchString(s), nil
	}
	return false, fmt.Errorf("string matcher %T is not supported", m.GetMatchPattern())
}

// matchStruct follows the matcher's path of keys into the metadata and matches
// the value found there.
func matchStruct(m *matcherv3.StructMatcher, s *structpb.Struct) (bool, error) {
	if len(m.GetPath()) == 0 {
		return false, fmt.Errorf("struct matcher without a path")
	}
	var v *structpb.Value
	for i, seg := range m.GetPath() {
		if s == nil {
			return matchValue(m.GetValue(), nil)
		}
		v = s.GetFields()[seg.GetKey()]
		if v == nil {
			return matchValue(m.GetValue(), nil)
		}
		if i < len(m.GetPath())-1 {
			s = v.GetStructValue()
		}
	}
	return matchValue(m.GetValue(), v)
}

// matchValue matches a metadata value; v is nil when the path led nowhere.
func matchValue(m *matcherv3.ValueMatcher, v *structpb.Value) (bool, error) {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_PresentMatch:
		return (v != nil) == p.PresentMatch, nil
	case nil:
		return false, fmt.Errorf("value matcher without a pattern")
	}
	if v == nil {
		return false, nil
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		_, ok := v.GetKind().(*structpb.Value_NullValue)
		return ok, nil
	case *matcherv3.ValueMatcher_BoolMatch:
		b, ok := v.GetKind().(*structpb.Value_BoolValue)
		return ok && b.BoolValue == p.BoolMatch, nil
	case *matcherv3.ValueMatcher_StringMatch:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return false, nil
		}
		return matchString(p.StringMatch, s.StringValue)
	case *matcherv3.ValueMatcher_DoubleMatch:
		d, ok := v.GetKind().(*structpb.Value_NumberValue)
		if !ok {
			return false, nil
		}
		if r := p.DoubleMatch.GetRange(); r != nil {
			return d.NumberValue >= r.GetStart() && d.NumberValue < r.GetEnd(), nil
		}
		return d.NumberValue == p.DoubleMatch.GetExact(), nil
	case *matcherv3.ValueMatcher_ListMatch:
		for _, e := range v.GetListValue().GetValues() {
			ok, err := matchValue(p.ListMatch.GetOneOf(), e)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *matcherv3.ValueMatcher_OrMatch:
		for _, alt := range p.OrMatch.GetValueMatchers() {
			ok, err := matchValue(alt, v)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("value matcher %T is not supported", m.GetMatchPattern())
}
