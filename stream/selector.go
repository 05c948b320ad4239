package stream

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Selector chooses nodes: by scope, by id, by node metadata, and by a stable
// share of their ids. Each part that is set must match; the zero Selector
// matches every node.
type Selector struct {
	// Scope, when set, is the scope the node must be served.
	Scope string `json:"scope,omitempty"`
	// IDs, when set, are the node ids that match.
	IDs []string `json:"ids,omitempty"`
	// Metadata, when set, are fields of node.metadata and the values they must
	// have: a string field its text, a number its shortest decimal form, a
	// bool "true" or "false". A dotted key ("team.name") walks nested structs.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Percent, when above 0, keeps the nodes whose Bucket is below Percent×100:
	// 10 keeps buckets 0–999. The same node ids fall in the same share on every
	// replica and after every restart, and the nodes of 1% are among those of
	// 10%. 0 (and 100) keeps every node.
	Percent float64 `json:"percent,omitempty"`
}

// Buckets is the number of buckets node ids fall in (Bucket).
const Buckets = 10_000

// Bucket returns the bucket of a node id in [0, Buckets): the FNV-1a 64-bit
// hash of the id, modulo Buckets. It is part of the project's contract: a
// percentage stage of a rollout picks the same nodes on every replica and
// release.
func Bucket(nodeID string) int {
	// hash/fnv's New64a, inline: it allocates nothing (a Router asks on every
	// read of the store).
	h := uint64(14695981039346656037)
	for i := 0; i < len(nodeID); i++ {
		h ^= uint64(nodeID[i])
		h *= 1099511628211
	}
	return int(h % Buckets)
}

// Matches reports whether the node of scope is selected.
func (s *Selector) Matches(scope string, node *corev3.Node) bool {
	if s.Scope != "" && s.Scope != scope {
		return false
	}
	id := node.GetId()
	if len(s.IDs) > 0 && !slices.Contains(s.IDs, id) {
		return false
	}
	for k, want := range s.Metadata {
		if !metadataIs(node.GetMetadata(), k, want) {
			return false
		}
	}
	if s.Percent > 0 && s.Percent < 100 && float64(Bucket(id)) >= s.Percent*Buckets/100 {
		return false
	}
	return true
}

// Validate reports a selector that can select nothing sensible.
func (s *Selector) Validate() error {
	if s.Percent < 0 || s.Percent > 100 {
		return fmt.Errorf("percent %g is not in [0, 100]", s.Percent)
	}
	for k := range s.Metadata {
		if k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
			return fmt.Errorf("metadata key %q: want a field name, or names joined by dots", k)
		}
	}
	return nil
}

// String describes the selector for logs and pages: "all nodes" for the zero
// one.
func (s *Selector) String() string {
	var parts []string
	if s.Scope != "" {
		parts = append(parts, "scope="+s.Scope)
	}
	if len(s.IDs) > 0 {
		parts = append(parts, "ids="+strings.Join(s.IDs, ","))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Metadata)) {
		parts = append(parts, "metadata."+k+"="+s.Metadata[k])
	}
	if s.Percent > 0 && s.Percent < 100 {
		parts = append(parts, strconv.FormatFloat(s.Percent, 'g', -1, 64)+"%")
	}
	if len(parts) == 0 {
		return "all nodes"
	}
	return strings.Join(parts, " ")
}

// metadataIs reports whether a (dotted) field of node metadata has the text
// want, allocating nothing (a Router asks on every read of the store).
func metadataIs(md *structpb.Struct, key, want string) bool {
	var v *structpb.Value
	for seg := range strings.SplitSeq(key, ".") {
		if md == nil {
			return false
		}
		v = md.GetFields()[seg]
		md = v.GetStructValue()
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue == want
	case *structpb.Value_NumberValue:
		var buf [32]byte
		return string(strconv.AppendFloat(buf[:0], k.NumberValue, 'g', -1, 64)) == want
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue) == want
	}
	return false
}
