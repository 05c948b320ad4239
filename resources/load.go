package resources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
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
	// Line is the 1-based line of the file the error is on, or the resource starts
	// on; 0 when unknown.
	Line int
	// Name is the resource's name when known.
	Name string
	// TypeURL is the resource's type when known.
	TypeURL string
	// Err is what is wrong: a *ValidationError (or several, joined), a protojson
	// error naming the field, or a plain error.
	Err error
}

// Error formats the error as `file.yaml:12: resource #2 (CDS "web"): reason`, one
// line per violation when Err holds several validation errors.
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
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
			lines[i] = prefix + ve.detail()
		}
		return strings.Join(lines, "\n")
	}
	return prefix + e.Err.Error()
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
// resource's fields. A resource without a name field (an LbEndpoint) is named by
// wrapping it in an envoy.service.discovery.v3.Resource, of which only name and
// resource are read. Every resource is validated (see Validate) and returned as
// Validated, so the store does not validate it again; a type and name may
// appear once per file. The file is read whole or not at all: any error
// returns no resource, and the errors, *LoadError each, are joined.
func Parse(path string, data []byte) ([]Resource, error) {
	var (
		items []item
		err   error
	)
	isJSON := false
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		items, err = yamlItems(path, data)
	case ".json":
		isJSON = true
		items, err = jsonItems(path, data)
	default:
		return nil, &LoadError{File: path, Err: fmt.Errorf("file extension %q: want .yaml, .yml or .json", ext)}
	}
	if err != nil {
		return nil, err
	}

	type key struct{ typeURL, name string }
	first := make(map[key]int, len(items))
	var (
		out  []Resource
		errs []error
	)
	for i, it := range items {
		res, err := decodeItem(it, isJSON)
		if err != nil {
			err.File, err.Index, err.Line = path, i+1, it.line
			errs = append(errs, err)
			continue
		}
		k := key{res.TypeURL, res.Name}
		if j, dup := first[k]; dup {
			errs = append(errs, &LoadError{File: path, Index: i + 1, Line: it.line, Name: res.Name, TypeURL: res.TypeURL,
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

// decodeItem decodes and validates one resource. The returned error lacks the
// file, index and line, which the caller knows.
func decodeItem(it item, isJSON bool) (Resource, *LoadError) {
	if !bytes.HasPrefix(it.json, []byte("{")) {
		return Resource{}, &LoadError{Err: errors.New(`not an object: want a resource (an object with "@type")`)}
	}
	var h header
	_ = json.Unmarshal(it.json, &h) // best effort: protojson reports what is wrong
	le := &LoadError{Name: h.name()}
	if h.Type == nil {
		le.Err = fmt.Errorf(`missing "@type": want one of %s`, servedShortNames())
		return Resource{}, le
	}
	wrapped := *h.Type == wrapperType
	typeURL := *h.Type
	if wrapped {
		if h.Resource == nil || h.Resource.Type == nil {
			le.Err = fmt.Errorf(`the wrapper's "resource" has no "@type": want one of %s`, servedShortNames())
			return Resource{}, le
		}
		typeURL = *h.Resource.Type
	}
	if !Known(typeURL) {
		le.Err = fmt.Errorf("unknown resource type %q: want one of %s", typeURL, servedShortNames())
		return Resource{}, le
	}
	le.TypeURL = typeURL

	a, err := unmarshalAny(it, isJSON)
	if err != nil {
		le.Err = err
		return Resource{}, le
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		le.Err = err
		return Resource{}, le
	}
	name := ""
	if wrapped {
		w, _ := m.(*discoveryv3.Resource)
		if w.GetResource() == nil {
			le.Err = errors.New(`the wrapper has no "resource"`)
			return Resource{}, le
		}
		if m, err = DecodeAny(w.GetResource()); err != nil {
			le.Err = err
			return Resource{}, le
		}
		name = w.GetName()
	}
	if name == "" {
		name = NameOf(m)
	}
	le.Name = name
	if name == "" && typeURL == protocol.TypeLbEndpoint {
		le.Err = fmt.Errorf(`an LbEndpoint has no name field: wrap it in a %q with a name`, wrapperType)
		return Resource{}, le
	}
	if err := Validate(typeURL, name, m); err != nil {
		le.Err = err
		return Resource{}, le
	}
	return validated(typeURL, name, m), nil
}

// jsonPosition matches the position protojson puts in its errors.
var jsonPosition = regexp.MustCompile(`\(line \d+:\d+\): `)

// unmarshalAny reads a resource with protojson, which resolves its "@type" and
// every Any nested in it through protoregistry.GlobalTypes.
func unmarshalAny(it item, isJSON bool) (*anypb.Any, error) {
	a := &anypb.Any{}
	err := protojson.Unmarshal(it.json, a)
	if err == nil {
		return a, nil
	}
	if !isJSON || it.line == 0 {
		// In YAML, the position is in the converted JSON, not in the file.
		return nil, errors.New(jsonPosition.ReplaceAllString(err.Error(), ""))
	}
	// Decode again with the resource where it stands in the file, so protojson's
	// (line:column) points into the file. Only failures pay for this.
	padded := make([]byte, 0, it.line-1+it.col-1+len(it.json))
	padded = append(padded, bytes.Repeat([]byte{'\n'}, it.line-1)...)
	padded = append(padded, bytes.Repeat([]byte{' '}, it.col-1)...)
	padded = append(padded, it.json...)
	if err2 := protojson.Unmarshal(padded, &anypb.Any{}); err2 != nil {
		return nil, err2
	}
	return nil, err
}
