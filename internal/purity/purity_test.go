package purity

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// enginePackages are the folders, relative to the module root, whose packages
// (and those beneath them) must hold no package-level mutable state. A folder
// that does not exist yet is skipped.
var enginePackages = []string{"protocol", "resources", "store", "stream", "persist", "source", "admin", "rollout"}

// readOnly are the package-level variables allowed beyond error sentinels and
// blank assertions, by folder and name, each with why it is not state: it is
// set once, at initialisation, and only ever read.
var readOnly = map[string]string{
	"protocol.types":          "the table of served types in push order (R15): data the protocol fixes",
	"protocol.byURL":          "the index of that table by type URL, built at initialisation",
	"resources.registry":      "type URL to Go message type, fixed at build time",
	"resources.jsonPosition":  "a compiled regexp; regexps are safe for concurrent use",
	"resources.deterministic": "proto marshal options, a plain value",
	"resources.typeURLs":      "the index of registry by message name, built at initialisation",
	"store.marshal":           "proto marshal options, a plain value",
	"store.emptyTable":        "the empty table every missing table shares; its one mutable part, the Sorted cache, can only ever hold the empty list",
	"stream.services":         "the gRPC service descriptions Register installs",
	"stream.sotwVariant":      "how a SotW stream reads and writes, functions only",
	"stream.deltaVariant":     "how a delta stream reads and writes, functions only",
	"persist.descWrites":      "a Prometheus metric description, immutable",
	"persist.descFailures":    "a Prometheus metric description, immutable",
	"persist.descConflicts":   "a Prometheus metric description, immutable",
	"persist.descLastSuccess": "a Prometheus metric description, immutable",
	"persist.descBytes":       "a Prometheus metric description, immutable",
	"persist.descRevision":    "a Prometheus metric description, immutable",
}

// sentinel reports whether e makes an error sentinel: errors.New, fmt.Errorf,
// status.Error or status.Errorf.
func sentinel(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	switch pkg.Name + "." + sel.Sel.Name {
	case "errors.New", "fmt.Errorf", "status.Error", "status.Errorf":
		return true
	}
	return false
}

// packageVars returns the package-level variables of the non-test files of
// dir that are neither blank nor error sentinels, as "folder.name" with their
// position.
func packageVars(t *testing.T, root, dir string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, dir)
	folder := filepath.ToSlash(rel)
	out := make(map[string]string)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if id.Name == "_" {
						continue // a compile-time assertion holds nothing
					}
					if i < len(vs.Values) && sentinel(vs.Values[i]) {
						continue
					}
					out[folder+"."+id.Name] = fset.Position(id.Pos()).String()
				}
			}
		}
	}
	return out
}

// The engine packages hold no package-level mutable state: every
// package-level variable is an error sentinel, a blank assertion or listed in
// readOnly with the reason it is never written. A cache, a counter or a
// registry that a program changes at run time belongs to a value its owner
// makes and passes in (as stream.Server does with machine.Caches).
func TestNoPackageLevelState(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	scanned := 0
	for _, top := range enginePackages {
		base := filepath.Join(root, top)
		if _, err := os.Stat(base); err != nil {
			continue
		}
		err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			scanned++
			for v, pos := range packageVars(t, root, path) {
				seen[v] = true
				if _, ok := readOnly[v]; !ok {
					t.Errorf("%s: package-level variable %s: engine packages hold no package-level state; make it a value its owner passes in, or, if it is never written after initialisation, add it to readOnly with the reason", pos, v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if scanned < 5 {
		t.Fatalf("scanned %d packages: the module root %s looks wrong", scanned, root)
	}
	for _, v := range slices.Sorted(func(yield func(string) bool) {
		for k := range readOnly {
			if !yield(k) {
				return
			}
		}
	}) {
		if !seen[v] {
			t.Logf("readOnly lists %s, which no longer exists", v)
		}
	}
}

// The scan catches what it must: a mutable variable fails, a sentinel and a
// blank assertion pass.
func TestPackageVarsSeesState(t *testing.T) {
	dir := t.TempDir()
	src := `package p

import (
	"errors"
	"sync"
)

var ErrX = errors.New("x")

var _ error = ErrX

var cache sync.Map

var (
	hits  int
	table = map[string]int{}
)
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p_test.go"), []byte("package p\n\nvar inTests int\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for k := range packageVars(t, filepath.Dir(dir), dir) {
			if !yield(k) {
				return
			}
		}
	})
	base := filepath.Base(dir)
	want := []string{base + ".cache", base + ".hits", base + ".table"}
	if !slices.Equal(got, want) {
		t.Fatalf("found %v, want %v", got, want)
	}
}

// The state machine knows nothing of gRPC: it takes requests and returns
// responses, and the transport around it (package stream, or an in-memory one)
// does the rest. Its files import no gRPC package (the generated discovery
// messages it reads are protobuf types).
func TestMachineKnowsNoGRPC(t *testing.T) {
	dir := filepath.Join("..", "..", "stream", "machine")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, imp := range f.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); strings.HasPrefix(path, "google.golang.org/grpc") {
				t.Errorf("%s imports %s: the machine knows nothing of gRPC", fset.Position(imp.Pos()), path)
			}
		}
	}
	if files == 0 {
		t.Fatalf("no files in %s", dir)
	}
}
