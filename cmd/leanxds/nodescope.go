package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	yaml "go.yaml.in/yaml/v3"

	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Under --node-identity a node is served the scope its certificate's identity
// names, and no other: not the default scope when its own holds nothing, not
// the scope its node.cluster (or metadata) claims. A scope can hold secrets:
// what a client reads must follow from what its certificate proves.
//
//	identity (the node id, checked against the certificate by nodeAuthorizer)
//	   │  --scope-map FILE: its entry (spiffe://td/ns/a: scope-a)
//	   │  without: the identity itself, if it can name a directory (cn, san-dns)
//	   ▼
//	scope ── must hold resources, and equal what --scope-by claims, if anything;
//	         otherwise the stream is refused (PermissionDenied) and the log says why

// identityScopes holds the stream.Options Authorize and ScopeOf of
// --node-identity.
type identityScopes struct {
	// proven checks that the node id is an identity of the client's
	// certificate (nodeAuthorizer of --node-identity).
	proven func(context.Context, *corev3.Node) error
	// claim is the scope a node claims by --scope-by, named claimName in errors
	// ("node.cluster"); nil under --scope-by id, where the node id, the identity
	// itself, is the claim.
	claim     stream.ScopeFunc
	claimName string
	// scopeMap maps identities to scopes (--scope-map); nil without one: an
	// identity then names its scope itself.
	scopeMap *scopeMapFile
	// st is read to refuse a node whose scope holds nothing.
	st  *store.Store
	log *slog.Logger
}

func newIdentityScopes(o *serveOptions, st *store.Store, log *slog.Logger) (*identityScopes, error) {
	s := &identityScopes{proven: nodeAuthorizer(o.nodeIdentity), st: st, log: log}
	switch {
	case o.scopeBy == "cluster":
		s.claim, s.claimName = stream.ScopeByCluster, "node.cluster"
	case strings.HasPrefix(o.scopeBy, "metadata:"):
		key := strings.TrimPrefix(o.scopeBy, "metadata:")
		s.claim, s.claimName = stream.ScopeByMetadata(key), "node.metadata."+key
	}
	if o.scopeMap != "" {
		m, err := openScopeMap(o.scopeMap, log)
		if err != nil {
			return nil, err
		}
		s.scopeMap = m
	}
	return s, nil
}

// authorize is stream.Options.Authorize: the node id must be an identity of
// the client's certificate, and that identity must have a scope that holds
// resources and that the node's claim, if any, agrees with.
func (s *identityScopes) authorize(ctx context.Context, n *corev3.Node) error {
	err := s.check(ctx, n)
	if err != nil {
		s.log.Warn("node refused", "node", n.GetId(), "cluster", n.GetCluster(), "reason", err.Error())
	}
	return err
}

func (s *identityScopes) check(ctx context.Context, n *corev3.Node) error {
	if err := s.proven(ctx, n); err != nil {
		return err
	}
	id := n.GetId()
	scope, err := s.scopeOf(id)
	if err != nil {
		return err
	}
	if s.claim != nil {
		// An empty claim names no scope: the identity's is served.
		if claimed := s.claim(n); claimed != "" && claimed != scope {
			return fmt.Errorf("%s %q is not the scope of the certificate's identity %q, which is %q", s.claimName, claimed, id, scope)
		}
	}
	if !s.st.View().HasScope(scope) {
		return fmt.Errorf("scope %q of identity %q holds no resource (its directory is missing or empty); under --node-identity a node is served its own scope only", scope, id)
	}
	return nil
}

// scope is stream.Options.ScopeOf: authorize has checked that the node id is
// the certificate's identity, so the node id names the scope. It returns "",
// a scope that holds nothing, if the identity lost its scope since (the scope
// map changed in between).
func (s *identityScopes) scope(n *corev3.Node) string {
	scope, err := s.scopeOf(n.GetId())
	if err != nil {
		return ""
	}
	return scope
}

// scopeOf returns the scope of an identity.
func (s *identityScopes) scopeOf(id string) (string, error) {
	if s.scopeMap != nil {
		return s.scopeMap.lookup(id)
	}
	if err := checkScopeName(id); err != nil {
		return "", fmt.Errorf("identity %q cannot name a scope directory (%v): map it to one with --scope-map", id, err)
	}
	return id, nil
}

// checkScopeName says why name cannot be a scope of the config directory (a
// subdirectory's name), or returns nil.
func checkScopeName(name string) error {
	switch {
	case name == "":
		return errors.New("it is empty")
	case strings.ContainsAny(name, "/\\\x00"):
		return errors.New("it holds a slash")
	case strings.HasPrefix(name, "."):
		return errors.New("it starts with a dot, and such directories are skipped")
	}
	return nil
}

// scopeMapFile is --scope-map: a YAML mapping of identities to scopes, read at
// start and read again when the file changes (a changed file that is invalid
// is logged and the previous mapping kept).
type scopeMapFile struct {
	path string
	log  *slog.Logger

	mu sync.Mutex
	// scopes is the mapping last read successfully.
	scopes map[string]string
	// modTime and size identify the file last read (or last refused, so that
	// it is logged once).
	modTime time.Time
	size    int64
}

func openScopeMap(path string, log *slog.Logger) (*scopeMapFile, error) {
	f := &scopeMapFile{path: path, log: log}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--scope-map: %w", err)
	}
	scopes, err := readScopeMap(path)
	if err != nil {
		return nil, fmt.Errorf("--scope-map: %w", err)
	}
	f.scopes, f.modTime, f.size = scopes, fi.ModTime(), fi.Size()
	log.Info("scope map loaded", "file", path, "identities", len(scopes))
	return f, nil
}

// lookup returns the scope of id, reading the file again first if it changed.
func (f *scopeMapFile) lookup(id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloadLocked()
	scope, ok := f.scopes[id]
	if !ok {
		return "", fmt.Errorf("identity %q has no entry in the scope map %s", id, f.path)
	}
	return scope, nil
}

// reloadLocked reads the file again if its size or modification time changed.
func (f *scopeMapFile) reloadLocked() {
	fi, err := os.Stat(f.path)
	if err != nil || (fi.ModTime().Equal(f.modTime) && fi.Size() == f.size) {
		// A file gone for a moment (replaced by a rename) keeps its mapping.
		return
	}
	f.modTime, f.size = fi.ModTime(), fi.Size()
	scopes, err := readScopeMap(f.path)
	if err != nil {
		f.log.Error("scope map rejected: the previous one is still used", "file", f.path, "err", err)
		return
	}
	f.scopes = scopes
	f.log.Info("scope map loaded", "file", f.path, "identities", len(scopes))
}

// readScopeMap reads a scope map file: a YAML mapping of identities to the
// scopes they are served.
//
//	spiffe://example.org/ns/prod/sa/edge: edge
//	spiffe://example.org/ns/prod/sa/payments: payments
func readScopeMap(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	scopes := make(map[string]string)
	if len(doc.Content) == 0 {
		return scopes, nil // an empty file: no identity has a scope
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of identities to scopes (spiffe://example.org/ns/prod/sa/edge: edge)", path, m.Line)
	}
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode || k.Value == "":
			errs = append(errs, fmt.Errorf("%s:%d: an identity must be a non-empty string", path, k.Line))
		case v.Kind != yaml.ScalarNode || v.Tag == "!!null":
			errs = append(errs, fmt.Errorf("%s:%d: identity %q: its scope must be a string", path, v.Line, k.Value))
		default:
			if _, dup := scopes[k.Value]; dup {
				errs = append(errs, fmt.Errorf("%s:%d: identity %q is mapped twice", path, k.Line, k.Value))
				continue
			}
			if err := checkScopeName(v.Value); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: identity %q: scope %q cannot name a scope directory: %v", path, v.Line, k.Value, v.Value, err))
				continue
			}
			scopes[k.Value] = v.Value
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return scopes, nil
}
