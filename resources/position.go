package resources

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml3 "go.yaml.in/yaml/v3"
)

// Finding the line of a field. protojson reports where it stopped in the JSON text
// it read, and Validate names the field it refuses by its path; both are turned
// into a path of object keys and list indexes, which is then looked up in the file
// as written: in a JSON file by the same path, in a YAML file in the nodes the
// YAML parser made, which know their line and column. This only runs for a
// resource that failed.

// jsonEntry is one value of a JSON text: its path from the top, and where its key
// (for an object member) and its value start.
type jsonEntry struct {
	path []string
	// keyOff is the offset of the member's key, -1 for a list element or the top.
	keyOff int
	// valOff and valEnd delimit the value.
	valOff, valEnd int
}

// jsonEntries lists every value of js, a valid JSON text, with its path: object
// keys by name, list elements by index ("0", "1", ...).
func jsonEntries(js []byte) []jsonEntry { return jsonEntriesTo(js, -1) }

// jsonEntriesTo lists the values of js down to depth (the top is at depth 0),
// or all of them when depth is negative. Deeper values are only skipped.
func jsonEntriesTo(js []byte, depth int) []jsonEntry {
	var out []jsonEntry
	var value func(i, d int, path []string, keyOff int) int
	value = func(i, d int, path []string, keyOff int) int {
		i = skipJSONSpace(js, i)
		record := depth < 0 || d <= depth
		childRecorded := depth < 0 || d+1 <= depth
		at := -1
		if record {
			at = len(out)
			out = append(out, jsonEntry{path: path, keyOff: keyOff, valOff: i})
		}
		if i >= len(js) {
			return i
		}
		switch js[i] {
		case '{':
			i++
			for {
				i = skipJSONSpace(js, i)
				if i >= len(js) || js[i] == '}' {
					i++
					break
				}
				if js[i] == ',' {
					i++
					continue
				}
				kOff := i
				end := skipJSONString(js, i)
				var child []string
				if childRecorded {
					var key string
					_ = json.Unmarshal(js[kOff:end], &key)
					child = append(path[:len(path):len(path)], key)
				}
				i = skipJSONSpace(js, end)
				if i < len(js) && js[i] == ':' {
					i++
				}
				i = value(i, d+1, child, kOff)
			}
		case '[':
			i++
			for n := 0; ; {
				i = skipJSONSpace(js, i)
				if i >= len(js) || js[i] == ']' {
					i++
					break
				}
				if js[i] == ',' {
					i++
					continue
				}
				var child []string
				if childRecorded {
					child = append(path[:len(path):len(path)], strconv.Itoa(n))
				}
				i = value(i, d+1, child, -1)
				n++
			}
		case '"':
			i = skipJSONString(js, i)
		default:
			for i < len(js) && !strings.ContainsRune(",}] \t\r\n", rune(js[i])) {
				i++
			}
		}
		if at >= 0 {
			out[at].valEnd = min(i, len(js))
		}
		return i
	}
	value(0, 0, nil, -1)
	return out
}

func skipJSONSpace(js []byte, i int) int {
	for i < len(js) && (js[i] == ' ' || js[i] == '\t' || js[i] == '\r' || js[i] == '\n') {
		i++
	}
	return i
}

// skipJSONString returns the offset after the string starting at i.
func skipJSONString(js []byte, i int) int {
	for i++; i < len(js); i++ {
		switch js[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// jsonPathAt returns the path of the key or value that starts at offset off of
// js, whether that is a value rather than a key, and whether one starts there.
func jsonPathAt(entries []jsonEntry, off int) (path []string, value, ok bool) {
	for _, e := range entries {
		if e.keyOff == off || e.valOff == off {
			return e.path, e.valOff == off, true
		}
	}
	return nil, false, false
}

// jsonFind returns the entry of the value at path, or of the deepest value on the
// way to it, and whether the whole path was found. Keys match by proto or JSON
// name (sameField).
func jsonFind(entries []jsonEntry, path []string) (jsonEntry, bool) {
	best, depth := entries[0], 0
	for _, e := range entries {
		if len(e.path) <= depth || len(e.path) > len(path) {
			continue
		}
		n := 0
		for n < len(e.path) && sameField(e.path[n], path[n]) {
			n++
		}
		if n == len(e.path) && n > depth {
			best, depth = e, n
		}
	}
	return best, depth == len(path)
}

// yamlFind returns the node of the field at path under n: the key node of an
// object member, the node of a list element; the deepest node found on the way
// when the path goes further than the file. value is the node of the value
// found there.
func yamlFind(n *yaml3.Node, path []string) (at, value *yaml3.Node) {
	at = n
	for _, seg := range path {
		for n.Kind == yaml3.DocumentNode && len(n.Content) > 0 {
			n = n.Content[0]
		}
		if n.Kind == yaml3.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var next, pos *yaml3.Node
		switch n.Kind {
		case yaml3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if sameField(n.Content[i].Value, seg) {
					pos, next = n.Content[i], n.Content[i+1]
					break
				}
			}
		case yaml3.SequenceNode:
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
				pos, next = n.Content[i], n.Content[i]
			}
		}
		if next == nil {
			return at, n
		}
		at, n = pos, next
	}
	return at, n
}

// sameField reports whether a key written in a file names the field name: the
// same, or the same but for case and underscores (a JSON name, connectTimeout,
// for the proto name connect_timeout).
func sameField(key, name string) bool {
	if key == name {
		return true
	}
	return strings.EqualFold(strings.ReplaceAll(key, "_", ""), strings.ReplaceAll(name, "_", ""))
}

// splitFieldPath splits a ValidationError's field path
// ("filter_chains[0].filters[0].typed_config", "options[envoy.foo]") into
// segments.
func splitFieldPath(p string) []string {
	var out []string
	for p != "" {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return append(out, p[1:])
			}
			out = append(out, p[1:end])
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, p[:end])
			p = p[end:]
		}
	}
	return out
}

// jsonPosition matches the position protojson puts in its errors, in the
// JSON text it read.
var jsonPosition = regexp.MustCompile(`\(line (\d+):(\d+)\): ?`)

// offsetOf returns the byte offset of 1-based line and column (in runes, as
// protojson counts) of js.
func offsetOf(js []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(js[off:], '\n')
		if i < 0 {
			return len(js)
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(js); c++ {
		_, size := utf8.DecodeRune(js[off:])
		off += size
	}
	return off
}

// cleanProtoError returns a protojson error's message without its "proto:"
// prefix and its position, with the non-breaking spaces protojson sometimes puts
// in instead of spaces (so that callers do not match on its messages) made plain
// spaces, and the JSON position it had (line 0 when none).
func cleanProtoError(err error) (msg string, line, col int) {
	msg = strings.TrimSpace(strings.TrimPrefix(plainSpaces(err.Error()), "proto:"))
	if m := jsonPosition.FindStringSubmatchIndex(msg); m != nil {
		line, _ = strconv.Atoi(msg[m[2]:m[3]])
		col, _ = strconv.Atoi(msg[m[4]:m[5]])
		before, after := strings.TrimSpace(msg[:m[0]]), msg[m[1]:]
		if before != "" {
			after = before + ": " + after // "syntax error: unexpected token"
		}
		msg = after
	}
	return msg, line, col
}

// plainSpaces replaces the non-breaking spaces the protobuf module puts in its
// errors at random (so that callers do not match on its messages) with plain
// spaces: a message printed with %q would show them as \u00a0.
func plainSpaces(s string) string { return strings.ReplaceAll(s, "\u00a0", " ") }
