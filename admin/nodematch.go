package admin

import (
	"fmt"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// nodeMatchers are a CSDS request's node matchers, with each regex compiled
// once for the request rather than once per node.
type nodeMatchers struct {
	ms []*matcherv3.NodeMatcher
	// regexes holds the compiled safe_regex patterns, by pattern.
	regexes map[string]*regexp.Regexp
}

func newNodeMatchers(ms []*matcherv3.NodeMatcher) *nodeMatchers {
	return &nodeMatchers{ms: ms, regexes: make(map[string]*regexp.Regexp)}
}

// match reports whether a node matches the request's node matchers: any of
// them (they are ORed, as csds.proto says); no matcher matches every node.
// Within one matcher the node id and every metadata matcher must match. An error
// names a matcher leanxds cannot evaluate (a custom string matcher, a bad regex).
func (nm *nodeMatchers) match(n *corev3.Node) (bool, error) {
	if len(nm.ms) == 0 {
		return true, nil
	}
	for _, m := range nm.ms {
		ok, err := nm.matchOne(m, n)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (nm *nodeMatchers) matchOne(m *matcherv3.NodeMatcher, n *corev3.Node) (bool, error) {
	if m.GetNodeId() != nil {
		ok, err := nm.matchString(m.GetNodeId(), n.GetId())
		if err != nil || !ok {
			return false, err
		}
	}
	for _, sm := range m.GetNodeMetadatas() {
		ok, err := nm.matchStruct(sm, n.GetMetadata())
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (nm *nodeMatchers) matchString(m *matcherv3.StringMatcher, s string) (bool, error) {
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
		re, err := nm.regex(p.SafeRegex.GetRegex())
		if err != nil {
			return false, err
		}
		return re.MatchString(s), nil
	}
	return false, fmt.Errorf("string matcher %T is not supported", m.GetMatchPattern())
}

// regex compiles a safe_regex pattern, once.
func (nm *nodeMatchers) regex(pattern string) (*regexp.Regexp, error) {
	if re, ok := nm.regexes[pattern]; ok {
		return re, nil
	}
	// Envoy's safe_regex must match the whole string.
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("safe_regex %q: %w", pattern, err)
	}
	nm.regexes[pattern] = re
	return re, nil
}

// matchStruct follows the matcher's path of keys into the metadata and matches
// the value found there.
func (nm *nodeMatchers) matchStruct(m *matcherv3.StructMatcher, s *structpb.Struct) (bool, error) {
	if len(m.GetPath()) == 0 {
		return false, fmt.Errorf("struct matcher without a path")
	}
	var v *structpb.Value
	for i, seg := range m.GetPath() {
		if s == nil {
			return nm.matchValue(m.GetValue(), nil)
		}
		v = s.GetFields()[seg.GetKey()]
		if v == nil {
			return nm.matchValue(m.GetValue(), nil)
		}
		if i < len(m.GetPath())-1 {
			s = v.GetStructValue()
		}
	}
	return nm.matchValue(m.GetValue(), v)
}

// matchValue matches a metadata value; v is nil when the path led nowhere.
func (nm *nodeMatchers) matchValue(m *matcherv3.ValueMatcher, v *structpb.Value) (bool, error) {
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
		return nm.matchString(p.StringMatch, s.StringValue)
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
			ok, err := nm.matchValue(p.ListMatch.GetOneOf(), e)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *matcherv3.ValueMatcher_OrMatch:
		for _, alt := range p.OrMatch.GetValueMatchers() {
			ok, err := nm.matchValue(alt, v)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("value matcher %T is not supported", m.GetMatchPattern())
}
