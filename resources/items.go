package resources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// item is the JSON text of one resource of a file, with where it starts in the file.
type item struct {
	json []byte
	// line is the 1-based line of the file the resource starts on, 0 if unknown.
	line int
	// col is the 1-based column of the resource's first byte in a JSON file, 0 for
	// YAML (where the JSON text is a conversion and has no place in the file).
	col int
	// offset is the byte offset of the resource in the JSON text.
	offset int
}

// yamlItems splits a YAML file into resources. sigs.k8s.io/yaml converts the YAML to
// the JSON protojson reads; the file is parsed a second time into nodes only to
// learn the line each resource starts on, which the conversion forgets.
func yamlItems(file string, data []byte) ([]item, error) {
	dec := yaml3.NewDecoder(bytes.NewReader(data))
	var doc yaml3.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, &LoadError{File: file, Err: err}
	}
	var next yaml3.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		// sigs.k8s.io/yaml would silently drop every document after the first.
		return nil, &LoadError{File: file, Line: next.Line,
			Err: errors.New("a second YAML document: put all the resources of a file in one list")}
	case !errors.Is(err, io.EOF):
		return nil, &LoadError{File: file, Err: err}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &LoadError{File: file, Err: err}
	}
	items, err := splitJSON(js)
	if err != nil {
		return nil, &LoadError{File: file, Err: err}
	}
	if len(doc.Content) == 0 {
		return items, nil
	}
	top := doc.Content[0]
	switch {
	case top.Kind == yaml3.SequenceNode && len(top.Content) == len(items):
		for i := range items {
			items[i].line = top.Content[i].Line
		}
	case top.Kind == yaml3.MappingNode && len(items) == 1:
		items[0].line = top.Line
	}
	return items, nil
}

// jsonItems splits a JSON file into resources, each with its line and column.
func jsonItems(file string, data []byte) ([]item, error) {
	items, err := splitJSON(data)
	if err != nil {
		le := &LoadError{File: file, Err: err}
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			le.Line, _ = position(data, int(se.Offset))
		}
		return nil, le
	}
	// Items come in file order, so one pass over the file finds every position.
	prev, line, lineStart := 0, 1, 0
	for i := range items {
		off := items[i].offset
		for j := prev; j < off; j++ {
			if data[j] == '\n' {
				line++
				lineStart = j + 1
			}
		}
		prev = off
		items[i].line, items[i].col = line, off-lineStart+1
	}
	return items, nil
}

// splitJSON splits a JSON document holding one resource or a list of them. An
// empty document or null holds no resource.
func splitJSON(data []byte) ([]item, error) {
	start := skipSpace(data, 0)
	if start == len(data) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var items []item
	switch data[start] {
	case '{':
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		items = append(items, item{json: raw, offset: start})
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		for dec.More() {
			off := skipSpace(data, int(dec.InputOffset()))
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			items = append(items, item{json: raw, offset: off})
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	default:
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if v != nil {
			return nil, fmt.Errorf(`want a resource (an object with "@type") or a list of them, not %s`, jsonKind(v))
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unexpected data after offset %d", dec.InputOffset())
	}
	return items, nil
}

// skipSpace returns the offset of the first byte at or after i that is neither JSON
// white space nor the comma separating list items.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n', ',':
			i++
		default:
			return i
		}
	}
	return i
}

// position returns the 1-based line and column of byte offset off in data.
func position(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = off - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "null"
}
