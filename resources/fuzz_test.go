package resources

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// Whatever a file holds, Parse returns resources or *LoadErrors, each placed
// within the file, never a panic, and no non-breaking space in a message.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/cluster.yaml", "testdata/edge.yaml", "testdata/edge.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.HasSuffix(name, ".json"), data)
		f.Add(strings.HasSuffix(name, ".json"), data[:len(data)/2])
	}
	f.Add(false, []byte("version_info: \"1\"\nresources:\n- {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: a}\n"))
	f.Add(false, []byte("- a: {b: [1, 'x\n  c: \"d\n\t- e\n"))
	f.Add(true, []byte(`{"resources": [{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "nme": 1}]}`))
	f.Fuzz(func(t *testing.T, isJSON bool, data []byte) {
		path := "f.yaml"
		if isJSON {
			path = "f.json"
		}
		_, err := Parse(path, data)
		if err == nil {
			return
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, e := range flattenErrors(err) {
			var le *LoadError
			if !errors.As(e, &le) {
				t.Fatalf("not a *LoadError: %T %v", e, e)
			}
			if le.Line < 0 || le.Line > lines || le.Column < 0 {
				t.Fatalf("position %d:%d outside a file of %d lines: %v", le.Line, le.Column, lines, le)
			}
			if strings.ContainsRune(le.Error(), '\u00a0') {
				t.Fatalf("non-breaking space in %q", le.Error())
			}
		}
	})
}

func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}
