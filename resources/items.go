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
// forgets. It returns the file's top node too (nil for an empty file).
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
	if err := duplicateKey(&doc); err != nil {
		err.File = file
		return nil, nil, err
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

// duplicateKey finds a key written twice in one mapping under n, which the
// conversion to JSON would resolve silently (the last one wins), and places
// it at the second occurrence.
func duplicateKey(n *yaml3.Node) *LoadError {
	if n.Kind == yaml3.MappingNode {
		first := make(map[string]*yaml3.Node, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml3.ScalarNode || k.Value == "<<" {
				continue
			}
			if f, ok := first[k.Value]; ok {
				return &LoadError{Line: k.Line, Column: k.Column,
					Err: fmt.Errorf("duplicate key %q (first at line %d)", k.Value, f.Line)}
			}
			first[k.Value] = k
		}
	}
	for _, c := range n.Content {
		if err := duplicateKey(c); err != nil {
			return err
		}
	}
	return nil
}

// yamlSyntaxError makes a YAML parser's error a LoadError at the line and,
// where the problem tells, the column at fault. The parsers say only the line,
// and not always the one at fault: go.yaml.in/yaml/v3 reports a parser error
// on the line where the collection it is in starts, and v2 (which
// sigs.k8s.io/yaml uses) on the line where the parser gave up; both count
// those lines from 0. v2's line is the nearer to the fault but for a quote left
// open, which v3 reports where it opens.
func yamlSyntaxError(file string, data []byte, err error) *LoadError {
	line, problem, ok := yamlErrorLine(err)
	if problem != "found unexpected end of stream" {
		if _, err2 := yaml.YAMLToJSON(data); err2 != nil {
			if l2, p2, ok2 := yamlErrorLine(err2); ok2 {
				line, problem, ok = l2, p2, true
			}
		}
	}
	if !ok {
		return &LoadError{File: file, Err: errors.New(strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	le := &LoadError{File: file, Line: line, Err: errors.New(problem)}
	if yamlParserProblem(problem) {
		le.Line++
	}
	lines := bytes.Split(data, []byte("\n"))
	// The end of the file is a line after the last one to the parsers.
	le.Line = min(le.Line, len(lines))
	if le.Line < 1 {
		return le
	}
	text := lines[le.Line-1]
	switch problem {
	case "did not find expected ',' or '}'", "did not find expected ',' or ']'":
		open := byte('{')
		if strings.HasSuffix(problem, "']'") {
			open = '['
		}
		if l, c := unclosed(data, le.Line, open); l > 0 {
			le.Line, le.Column = l, c
			le.Err = fmt.Errorf("%s: the %c opened here is not closed", problem, open)
		}
	case "found unexpected end of stream":
		if c := openQuote(text); c > 0 {
			le.Column = c
			le.Err = fmt.Errorf("%s: the quote opened here is not closed", problem)
		}
	case "did not find expected key", "did not find expected '-' indicator", "did not find expected node content":
		// The parser met a token it did not expect where the line starts.
		le.Column = firstNonSpace(text)
	case "mapping values are not allowed in this context":
		if i := bytes.Index(append(text[:len(text):len(text)], ' '), []byte(": ")); i >= 0 {
			le.Column = utf8.RuneCount(text[:i]) + 1
		}
	case "found a tab character that violates indentation", "found character that cannot start any token":
		if i := bytes.IndexByte(text, '\t'); i >= 0 && i < firstNonSpace(text)-1 || i == 0 {
			le.Column = utf8.RuneCount(text[:i]) + 1
			le.Err = fmt.Errorf("%s: YAML indents with spaces, not tabs", problem)
		} else if i := bytes.IndexAny(text, "@`"); i >= 0 {
			// Reserved indicators: a scalar starting with one must be quoted.
			le.Column = utf8.RuneCount(text[:i]) + 1
			le.Err = fmt.Errorf("%s: quote a value that starts with %c", problem, text[i])
		}
	}
	return le
}

// yamlErrorLine reads the line and the problem of a YAML parser's error ("yaml:
// line 3: did not find expected key", possibly after a prefix). The parsers
// leave out the line when it is the first (line 0 to them), except for an
// error in reading the bytes, which has no line.
func yamlErrorLine(err error) (line int, problem string, ok bool) {
	_, rest, found := strings.Cut(err.Error(), "yaml: ")
	if !found {
		return 0, "", false
	}
	if rest, found = strings.CutPrefix(rest, "line "); !found {
		for _, p := range []string{"invalid ", "control characters", "incomplete ", "input error", "unknown problem"} {
			if strings.HasPrefix(rest, p) {
				return 0, "", false
			}
		}
		return 1, rest, true
	}
	digits, problem, _ := strings.Cut(rest, ": ")
	line, convErr := strconv.Atoi(digits)
	return line, problem, convErr == nil
}

// firstNonSpace returns the 1-based column of the first character of line
// that is neither a space nor a tab, 0 if none.
func firstNonSpace(line []byte) int {
	for i, c := range line {
		if c != ' ' && c != '\t' {
			return utf8.RuneCount(line[:i]) + 1
		}
	}
	return 0
}

// openQuote returns the 1-based column of a quote the line opens and does not
// close, 0 if none.
func openQuote(line []byte) int {
	var quote, prev byte
	at := 0
	for i := 0; i < len(line); i++ {
		c := line[i]
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
			quote, at = c, i
		case c == '#' && (i == 0 || line[i-1] == ' '):
			return 0
		}
	}
	if quote == 0 {
		return 0
	}
	return utf8.RuneCount(line[:at]) + 1
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
		if oe, ok := errors.AsType[*jsonOffsetError](err); ok {
			le.Line, le.Column = position(data, oe.off)
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
	// at places the error of the value at base in data. The decoder's own
	// offsets miss the bytes Token consumed, so the value is read again alone
	// for an offset that counts from where it starts.
	at := func(base int64, err error) error {
		off := skipSpace(data, int(base))
		if se, ok := errors.AsType[*json.SyntaxError](err); ok && strings.HasPrefix(se.Error(), "expected comma") {
			return &jsonOffsetError{off: off, err: err}
		}
		var raw json.RawMessage
		switch err2 := json.NewDecoder(bytes.NewReader(data[off:])).Decode(&raw); {
		case err2 == nil:
			return err
		case errors.Is(err2, io.ErrUnexpectedEOF):
			return &jsonOffsetError{off: len(data), err: err2}
		default:
			if se, ok := errors.AsType[*json.SyntaxError](err2); ok {
				// Offset counts the byte at fault.
				return &jsonOffsetError{off: off + max(int(se.Offset)-1, 0), err: err2}
			}
			return err2
		}
	}
	var items []item
	switch data[start] {
	case '{':
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, at(0, err)
		}
		items = append(items, item{json: raw, offset: start})
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		for dec.More() {
			base := dec.InputOffset()
			off := skipSpace(data, int(base))
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, at(base, err)
			}
			items = append(items, item{json: raw, offset: off})
		}
		end := dec.InputOffset()
		if _, err := dec.Token(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, &jsonOffsetError{off: len(data), err: errors.New("unexpected end of the JSON document: the list opened on its first line is not closed")}
			}
			return nil, &jsonOffsetError{off: skipSpace(data, int(end)), err: err}
		}
	default:
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, at(0, err)
		}
		if v != nil {
			return nil, fmt.Errorf(`want a resource (an object with "@type") or a list of them, not %s`, jsonKind(v))
		}
	}
	end := int(dec.InputOffset())
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		for end < len(data) && (data[end] == ' ' || data[end] == '\t' || data[end] == '\r' || data[end] == '\n') {
			end++
		}
		return nil, &jsonOffsetError{off: end, err: errors.New("unexpected data after the end of the JSON document")}
	}
	return items, nil
}

// jsonOffsetError is an error at byte offset off of a JSON document.
type jsonOffsetError struct {
	off int
	err error
}

func (e *jsonOffsetError) Error() string { return e.err.Error() }
func (e *jsonOffsetError) Unwrap() error { return e.err }

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
