package resources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// item is the JSON text of one resource of a file, with where it starts in the file.
type item struct {
	json []byte
	// line and col are the 1-based line and column of the file the resource
	// starts on, 0 if unknown.
	line, col int
	// offset is the byte offset of the resource in the JSON text: in a JSON
	// file, in the file.
	offset int
	// node is the resource's YAML node, which knows the line and column of each
	// field; nil in a JSON file.
	node *yaml3.Node
}

// yamlItems splits a YAML file into resources. sigs.k8s.io/yaml converts the YAML to
// the JSON protojson reads; the file is parsed a second time into nodes only to
// learn the line and column of each resource and field, which the conversion
// forgets.
func yamlItems(file string, data []byte) ([]item, *yaml3.Node, error) {
	dec := yaml3.NewDecoder(bytes.NewReader(data))
	var doc yaml3.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, yamlSyntaxError(file, data, err)
	}
	var next yaml3.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		// sigs.k8s.io/yaml would silently drop every document after the first.
		return nil, nil, &LoadError{File: file, Line: next.Line, Column: next.Column,
			Err: errors.New("a second YAML document: put all the resources of a file in one list")}
	case !errors.Is(err, io.EOF):
		return nil, nil, yamlSyntaxError(file, data, err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, nil, yamlSyntaxError(file, data, err)
	}
	items, err := splitJSON(js)
	if err != nil {
		return nil, nil, &LoadError{File: file, Err: err}
	}
	if len(doc.Content) == 0 {
		return items, nil, nil
	}
	top := doc.Content[0]
	switch {
	case top.Kind == yaml3.SequenceNode && len(top.Content) == len(items):
		for i := range items {
			items[i].node = top.Content[i]
		}
	case top.Kind == yaml3.MappingNode && len(items) == 1:
		items[0].node = top
	}
	for i := range items {
		if n := items[i].node; n != nil {
			items[i].line, items[i].col = n.Line, n.Column
		}
	}
	return items, top, nil
}

// yamlParserProblem reports whether problem is one the YAML parser (rather
// than its scanner) reports, whose line it counts from 0 (go.yaml.in/yaml/v3
// reports the line of the context of the problem, the collection it is in, not
// of the problem itself; or, when that is the first line, the problem's).
func yamlParserProblem(problem string) bool {
	switch problem {
	case "did not find expected ',' or '}'",
		"did not find expected ',' or ']'",
		"did not find expected key",
		"did not find expected '-' indicator",
		"did not find expected node content",
		"did not find expected <document start>",
		"did not find expected <document end>",
		"did not find expected <stream-start>",
		"found undefined tag handle",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found duplicate %TAG directive":
		return true
	}
	return false
}

// yamlSyntaxError makes a YAML parser's error a LoadError at its line: and,
// for a flow mapping or list left open, at the column of its bracket.
func yamlSyntaxError(file string, data []byte, err error) *LoadError {
	msg := err.Error()
	// "yaml: line 3: did not find expected key", possibly after a prefix.
	_, rest, found := strings.Cut(msg, "yaml: line ")
	digits, problem, _ := strings.Cut(rest, ": ")
	line, convErr := strconv.Atoi(digits)
	if !found || convErr != nil {
		return &LoadError{File: file, Err: errors.New(strings.TrimPrefix(msg, "yaml: "))}
	}
	le := &LoadError{File: file, Line: line, Err: errors.New(problem)}
	if !yamlParserProblem(problem) {
		return le
	}
	le.Line++
	var open byte
	switch problem {
	case "did not find expected ',' or '}'":
		open = '{'
	case "did not find expected ',' or ']'":
		open = '['
	default:
		return le
	}
	if l, c := unclosed(data, le.Line, open); l > 0 {
		le.Line, le.Column = l, c
		le.Err = fmt.Errorf("%s: the %c opened here is not closed", problem, open)
	}
	return le
}

// unclosed returns the 1-based line and column of the innermost bracket open
// (a '{' or '[') at the end of line upTo that is not closed before, outside
// quotes and comments; 0, 0 if none.
func unclosed(data []byte, upTo int, open byte) (line, col int) {
	type mark struct {
		c         byte
		line, col int
	}
	var stack []mark
	for n, l := range bytes.SplitN(data, []byte("\n"), upTo+1) {
		if n == upTo {
			break
		}
		// A quote starts a quoted scalar only where a scalar starts.
		var quote, prev byte
		for i := 0; i < len(l); i++ {
			c := l[i]
			scalarStart := prev == 0 || strings.IndexByte(":-[{,", prev) >= 0
			if c != ' ' && c != '\t' {
				prev = c
			}
			switch {
			case quote != 0:
				if c == '\\' && quote == '"' {
					i++
				} else if c == quote {
					quote = 0
				}
			case (c == '"' || c == '\'') && scalarStart:
				quote = c
			case c == '#' && (i == 0 || l[i-1] == ' '):
				i = len(l)
			case c == '{' || c == '[':
				stack = append(stack, mark{c, n + 1, utf8.RuneCount(l[:i]) + 1})
			case (c == '}' || c == ']') && len(stack) > 0:
				stack = stack[:len(stack)-1]
			}
		}
	}
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i].c == open {
			return stack[i].line, stack[i].col
		}
	}
	return 0, 0
}

// jsonItems splits a JSON file into resources.
func jsonItems(file string, data []byte) ([]item, error) {
	items, err := splitJSON(data)
	if err != nil {
		le := &LoadError{File: file, Err: err}
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			le.Line, le.Column = position(data, int(se.Offset))
		}
		return nil, le
	}
	return items, nil
}

// jsonPositions sets the line and column of resources of the JSON file data,
// which come in file order, from their offsets.
func jsonPositions(data []byte, items []item) {
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
		items[i].line, items[i].col = line, utf8.RuneCount(data[lineStart:off])+1
	}
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

// position returns the 1-based line and column (in characters) of byte offset
// off in data.
func position(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
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
