package resources

import (
	"encoding/json"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The "did you mean" of an unknown field: the fields of the message the unknown
// one was written in, by proto name and JSON name, nearest by edit distance.

// messageAt returns the message type of the object at path in a resource whose
// JSON text js gave entries: it starts from the Any the resource is written as, and
// follows fields by proto or JSON name, list elements, map values and the "@type"
// of each Any on the way. It returns nil when the path leaves the known types.
func messageAt(js []byte, entries []jsonEntry, path []string) protoreflect.MessageDescriptor {
	var md protoreflect.MessageDescriptor
	for i := 0; ; {
		if md == nil || md.FullName() == "google.protobuf.Any" {
			// An Any is written as its payload with an "@type".
			e, ok := jsonFind(entries, append(path[:i:i], "@type"))
			if !ok {
				return nil
			}
			var typeURL string
			if json.Unmarshal(js[e.valOff:e.valEnd], &typeURL) != nil {
				return nil
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
			if err != nil {
				return nil
			}
			md = mt.Descriptor()
		}
		if i == len(path) {
			return md
		}
		fd := fieldNamed(md, path[i])
		if fd == nil {
			return nil
		}
		i++
		switch {
		case fd.IsList() || fd.IsMap():
			if i == len(path) {
				return nil // the list or map itself, not a message
			}
			i++ // the index or key
			if fd.IsMap() {
				fd = fd.MapValue()
			}
		}
		if md = fd.Message(); md == nil {
			return nil
		}
	}
}

// fieldNamed returns the field of md a file names key, by proto or JSON name.
func fieldNamed(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	fields := md.Fields()
	if fd := fields.ByName(protoreflect.Name(key)); fd != nil {
		return fd
	}
	return fields.ByJSONName(key)
}

// suggest returns what a field or value protojson refused (its error msg) at
// path of a resource's JSON text was likely meant to be: the nearest field
// name for an unknown field, the nearest value name for an unknown enum value;
// "" when nothing is near enough.
func suggest(msg string, js []byte, entries []jsonEntry, path []string) string {
	if len(path) == 0 {
		return ""
	}
	parent := messageAt(js, entries, path[:len(path)-1])
	if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return suggestField(parent, name)
	}
	// "invalid value for enum field lb_policy: "RANDUM"", the field of a list
	// element one level up.
	if _, value, ok := strings.Cut(msg, "invalid value for enum field "); ok {
		_, value, _ = strings.Cut(value, ": ")
		value, err := strconv.Unquote(value)
		if err != nil {
			return ""
		}
		var fd protoreflect.FieldDescriptor
		if parent != nil {
			fd = fieldNamed(parent, path[len(path)-1])
		}
		if fd == nil && len(path) > 1 {
			if up := messageAt(js, entries, path[:len(path)-2]); up != nil {
				fd = fieldNamed(up, path[len(path)-2])
			}
		}
		if fd == nil || fd.Enum() == nil {
			return ""
		}
		values := fd.Enum().Values()
		var names []string
		for i := range values.Len() {
			names = append(names, string(values.Get(i).Name()))
		}
		return nearest(value, names)
	}
	return ""
}

// suggestField returns the field name of md nearest to the unknown name, or ""
// when none is near enough to be a likely typo.
func suggestField(md protoreflect.MessageDescriptor, name string) string {
	if md == nil {
		return ""
	}
	var names []string
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		names = append(names, string(fd.Name()), fd.JSONName())
	}
	return nearest(name, names)
}

// nearest returns the candidate nearest to name by edit distance, case aside,
// or "" when none is near enough to be a likely typo: up to one edit in three
// characters, at most three.
func nearest(name string, candidates []string) string {
	best, bestDist := "", 0
	limit := min(3, max(1, len(name)/3))
	for _, cand := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(cand))
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = cand, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// fieldMessage rewrites protojson's error msg about the value at path to name the
// field as its path in the resource, in proto names
// ("endpoints[0].lb_endpoints[0].load_balancing_weight", also when it was
// written lbPolicy or is a wrapper), and says what a valid duration looks like.
func fieldMessage(msg string, js []byte, entries []jsonEntry, path []string) string {
	if len(path) == 0 {
		return msg
	}
	field := protoPath(js, entries, path)
	// protojson's "invalid value for KIND field NAME: VALUE" names the field
	// by its JSON name, or, for a wrapper written inline, as the wrapper's
	// "value".
	if rest, ok := strings.CutPrefix(msg, "invalid value for "); ok {
		if kind, rest, ok := strings.Cut(rest, " field "); ok && !strings.Contains(kind, " ") {
			if _, value, ok := strings.Cut(rest, ": "); ok {
				return "invalid value for " + kind + " field " + field + ": " + value
			}
		}
	}
	const durationHint = `want seconds with an "s" suffix, like "1s" or "0.250s"`
	if strings.HasPrefix(msg, "invalid google.protobuf.Duration value") {
		return field + ": " + msg + ": " + durationHint
	}
	// A number where a Duration's string belongs ("connect_timeout: 10").
	if tok, ok := strings.CutPrefix(msg, "syntax error: unexpected token "); ok {
		if md := messageAt(js, entries, path); md != nil && md.FullName() == "google.protobuf.Duration" {
			return field + ": invalid duration " + tok + ": " + durationHint
		}
	}
	return msg
}

// protoPath writes path as a field path in proto names: each segment that is a
// field of the message it is in by its JSON name becomes its proto name; list
// indexes are written [N].
func protoPath(js []byte, entries []jsonEntry, path []string) string {
	var b strings.Builder
	for i, seg := range path {
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
			continue
		}
		if md := messageAt(js, entries, path[:i]); md != nil {
			fd := md.Fields().ByJSONName(seg)
			if fd == nil {
				fd = md.Fields().ByName(protoreflect.Name(seg))
			}
			if fd != nil {
				seg = string(fd.Name())
			}
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}
