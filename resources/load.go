package resources

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	yaml3 "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/protocol"
)

// wrapperType is the type URL of the discovery Resource wrapper, which a file uses
// to name a resource that has no name field (an LbEndpoint for LEDS).
const wrapperType = "type.googleapis.com/envoy.service.discovery.v3.Resource"

// LoadError is an error in a resource file, located as precisely as the file allows.
type LoadError struct {
	// File is the path of the file.
	File string
	// Index is the resource's position in the file, counting from 1; 0 when the
	// error is about the file as a whole (a syntax error, an unknown extension).
	Index int
	// Line is the 1-based line of the file the error is on: the line of the
	// field at fault, or the resource starts on; 0 when unknown.
	Line int
	// Column is the 1-based column (in characters) of Line the error is at; 0
	// when unknown.
	Column int
	// Name is the resource's name when known.
	Name string
	// TypeURL is the resource's type when known.
	TypeURL string
	// Err is what is wrong: a *ValidationError (or several, joined), a protojson
	// error naming the field, or a plain error.
	Err error
}

// Error formats the error as `file.yaml:12:3: resource #2 (CDS "web"): reason`,
// one line per violation when Err holds several validation errors.
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Index > 0 {
		fmt.Fprintf(&b, "resource #%d", e.Index)
		switch {
		case e.TypeURL != "" && e.Name != "":
			fmt.Fprintf(&b, " (%s %q)", protocol.Short(e.TypeURL), e.Name)
		case e.TypeURL != "":
			fmt.Fprintf(&b, " (%s)", protocol.Short(e.TypeURL))
		case e.Name != "":
			fmt.Fprintf(&b, " (%q)", e.Name)
		}
		b.WriteString(": ")
	}
	prefix := b.String()
	if e.Err == nil {
		return prefix + "unknown error"
	}
	// A validation error names the resource again; the prefix already does.
	var ves []*ValidationError
	if collectValidationErrors(e.Err, &ves) {
		lines := make([]string, len(ves))
		for i, ve := range ves {
			lines[i] = prefix + plainSpaces(ve.detail())
		}
		return strings.Join(lines, "\n")
	}
	return prefix + plainSpaces(e.Err.Error())
}

// Unwrap returns the underlying error.
func (e *LoadError) Unwrap() error { return e.Err }

// collectValidationErrors appends to ves the validation errors err is made of, and
// reports whether it is made of nothing else.
func collectValidationErrors(err error, ves *[]*ValidationError) bool {
	switch e := err.(type) {
	case *ValidationError:
		*ves = append(*ves, e)
		return true
	case interface{ Unwrap() []error }:
		for _, sub := range e.Unwrap() {
			if !collectValidationErrors(sub, ves) {
				return false
			}
		}
		return true
	}
	return false
}

// Load reads a resource file and parses it (see Parse).
func Load(path string) ([]Resource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse reads the resources of a file: YAML for a .yaml or .yml path, JSON for
// .json. The file holds one resource or a list of them, each written as protojson
// writes an Any, so it looks as in Envoy's docs: an object with "@type" and the
// resource's fields. It may also be a DiscoveryResponse, as Envoy reads one from
// a file (a path config source): an object with "resources", each such an
// object, and "version_info", which is ignored (the server versions what it
// serves). A resource without a name field (an LbEndpoint) is named by wrapping
// it in an envoy.service.discovery.v3.Resource, of which only name and resource
// are read. A client's bootstrap is refused with a *BootstrapError.
//
// Every resource is validated (see Validate) and returned as Validated, so the
// store does not validate it again; a type and name may appear once per file.
// The file is read whole or not at all: any error returns no resource, and the
// errors, *LoadError each, are joined. Each points at the line and column of
// the field at fault when it has one, of the resource otherwise.
func Parse(path string, data []byte) ([]Resource, error) {
	var (
		items     []item
		top       *yaml3.Node
		err       error
		topObject bool
	)
	isJSON := false
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		items, top, err = yamlItems(path, data)
		topObject = top != nil && top.Kind == yaml3.MappingNode
	case ".json":
		isJSON = true
		items, err = jsonItems(path, data)
		start := skipSpace(data, 0)
		topObject = start < len(data) && data[start] == '{'
	default:
		return nil, &LoadError{File: path, Err: fmt.Errorf("file extension %q: want .yaml, .yml or .json", ext)}
	}
	if err != nil {
		return nil, err
	}
	if isJSON {
		jsonPositions(data, items)
	}

	wantType := ""
	if topObject && len(items) == 1 {
		it := items[0]
		if items, wantType, err = envelope(it, top); err != nil {
			le := &LoadError{File: path, Line: it.line, Column: it.col, Err: err}
			if pe, ok := err.(*placedError); ok {
				le.Line, le.Column = locate(it, data, jsonEntries(it.json), pe.path, false)
			}
			return nil, le
		}
		if isJSON {
			jsonPositions(data, items)
		}
	}

	type key struct{ typeURL, name string }
	first := make(map[key]int, len(items))
	var (
		out  []Resource
		errs []error
	)
	for i, it := range items {
		res, les := decodeItem(it, data)
		if les == nil && wantType != "" && res.TypeURL != wantType {
			les = []*LoadError{{Line: it.line, Column: it.col, Name: res.Name, TypeURL: res.TypeURL,
				Err: fmt.Errorf("a %s in a DiscoveryResponse whose type_url is %s", protocol.Short(res.TypeURL), wantType)}}
		}
		if les != nil {
			for _, le := range les {
				le.File, le.Index = path, i+1
				errs = append(errs, le)
			}
			continue
		}
		k := key{res.TypeURL, res.Name}
		if j, dup := first[k]; dup {
			errs = append(errs, &LoadError{File: path, Index: i + 1, Line: it.line, Column: it.col, Name: res.Name, TypeURL: res.TypeURL,
				Err: fmt.Errorf("same type and name as resource #%d (line %d)", j+1, items[j].line)})
			continue
		}
		first[k] = i
		out = append(out, res)
	}
	switch len(errs) {
	case 0:
		return out, nil
	case 1:
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// header is what decodeItem reads of a resource before decoding it, to choose the
// type and name the resource in errors.
type header struct {
	Type             *string         `json:"@type"`
	Name             json.RawMessage `json:"name"`
	ClusterName      json.RawMessage `json:"cluster_name"`
	ClusterNameCamel json.RawMessage `json:"clusterName"`
	Resource         *header         `json:"resource"`
}

func (h *header) name() string {
	for _, raw := range []json.RawMessage{h.Name, h.ClusterName, h.ClusterNameCamel} {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// decodeItem decodes and validates one resource of the file data. The returned
// errors lack the file and index, which the caller knows; each has the line and
// column of the field at fault, or of the resource.
func decodeItem(it item, data []byte) (Resource, []*LoadError) {
	fail := func(le *LoadError, err error) (Resource, []*LoadError) {
		le.Err = err
		if le.Line == 0 {
			le.Line, le.Column = it.line, it.col
		}
		return Resource{}, []*LoadError{le}
	}
	if !bytes.HasPrefix(it.json, []byte("{")) {
		return fail(&LoadError{}, errors.New(`not an object: want a resource (an object with "@type")`))
	}
	var h header
	_ = json.Unmarshal(it.json, &h) // best effort: protojson reports what is wrong
	le := &LoadError{Name: h.name()}
	if h.Type == nil {
		return fail(le, fmt.Errorf(`missing "@type": want one of %s`, servedShortNames()))
	}
	wrapped := *h.Type == wrapperType
	typeURL := *h.Type
	if wrapped {
		if h.Resource == nil || h.Resource.Type == nil {
			return fail(le, fmt.Errorf(`the wrapper's "resource" has no "@type": want one of %s`, servedShortNames()))
		}
		typeURL = *h.Resource.Type
	}
	if !Known(typeURL) {
		return fail(le, fmt.Errorf("unknown resource type %q: want one of %s", typeURL, servedShortNames()))
	}
	le.TypeURL = typeURL

	a := &anypb.Any{}
	if err := protojson.Unmarshal(it.json, a); err != nil {
		msg, line, col := cleanProtoError(err)
		if line > 0 {
			entries := jsonEntries(it.json)
			if path, value, ok := jsonPathAt(entries, offsetOf(it.json, line, col)); ok {
				le.Line, le.Column = locate(it, data, entries, path, value)
				s := suggest(msg, it.json, entries, path)
				msg = fieldMessage(msg, it.json, entries, path)
				if s != "" {
					msg += fmt.Sprintf(", did you mean %q?", s)
				}
			}
		}
		return fail(le, errors.New(msg))
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return fail(le, err)
	}
	name := ""
	if wrapped {
		w, _ := m.(*discoveryv3.Resource)
		if w.GetResource() == nil {
			return fail(le, errors.New(`the wrapper has no "resource"`))
		}
		if m, err = DecodeAny(w.GetResource()); err != nil {
			return fail(le, err)
		}
		name = w.GetName()
	}
	if name == "" {
		name = NameOf(m)
	}
	le.Name = name
	if name == "" && typeURL == protocol.TypeLbEndpoint {
		return fail(le, fmt.Errorf(`an LbEndpoint has no name field: wrap it in a %q with a name`, wrapperType))
	}
	err = Validate(typeURL, name, m)
	if err == nil {
		return validated(typeURL, name, m), nil
	}
	var ves []*ValidationError
	if !collectValidationErrors(err, &ves) {
		return fail(le, err)
	}
	// One error per violation, each at its field.
	entries := jsonEntries(it.json)
	les := make([]*LoadError, len(ves))
	for i, ve := range ves {
		les[i] = &LoadError{Name: name, TypeURL: typeURL, Err: ve, Line: it.line, Column: it.col}
		if ve.Field != "" {
			path := splitFieldPath(ve.Field)
			if wrapped {
				path = append([]string{"resource"}, path...)
			}
			les[i].Line, les[i].Column = locate(it, data, entries, path, false)
		}
	}
	// In the order of the file, as a reader fixes them.
	slices.SortStableFunc(les, func(a, b *LoadError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return Resource{}, les
}

// locate returns the line and column in the file of the field at path in
// resource it (of its key, or of its value when value is set), or of the
// nearest field on the way to it.
func locate(it item, data []byte, entries []jsonEntry, path []string, value bool) (line, col int) {
	if it.node != nil {
		n, v := yamlFind(it.node, path)
		if value {
			n = v
		}
		return n.Line, n.Column
	}
	if it.line == 0 || len(entries) == 0 {
		return it.line, it.col
	}
	e, found := jsonFind(entries, path)
	off := e.valOff
	if e.keyOff >= 0 && !(value && found) {
		off = e.keyOff
	}
	return position(data, it.offset+off)
}
