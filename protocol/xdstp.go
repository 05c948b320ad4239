package protocol

import (
	"net/url"
	"slices"
	"strings"
)

// xdstp names (cncf/xds TP1): xdstp://authority/type/id?context-params.
const xdstpScheme = "xdstp://"

// IsXdstp reports whether a resource name is an xdstp URI.
func IsXdstp(name string) bool { return strings.HasPrefix(name, xdstpScheme) }

// NormalizeName returns the canonical form of a resource name: an xdstp name with
// its context parameters sorted (X1: names that differ only in the order of their
// parameters are the same resource); any other name as it is. A malformed xdstp
// name is returned as it is, and so matches only itself.
func NormalizeName(name string) string {
	if !IsXdstp(name) {
		return name
	}
	rest := name[len(xdstpScheme):]
	path, query, hasQuery := strings.Cut(rest, "?")
	if !hasQuery {
		return name
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return name
	}
	// url.Values.Encode sorts by key; sort each key's values too.
	for _, vs := range q {
		slices.Sort(vs)
	}
	if len(q) == 0 {
		return xdstpScheme + path
	}
	return xdstpScheme + path + "?" + q.Encode()
}

// Glob is an xdstp glob collection: xdstp://authority/type/prefix/* (X2).
type Glob struct {
	// prefix is everything up to and including the last "/" before "*".
	prefix string
	// params are the glob's normalized context parameters ("" for none).
	params string
}

// ParseGlob recognises a glob collection name; ok is false for any other name.
func ParseGlob(name string) (g Glob, ok bool) {
	if !IsXdstp(name) {
		return Glob{}, false
	}
	n := NormalizeName(name)
	path, params, _ := strings.Cut(n, "?")
	if !strings.HasSuffix(path, "/*") {
		return Glob{}, false
	}
	return Glob{prefix: strings.TrimSuffix(path, "*"), params: params}, true
}

// Matches reports whether a normalized resource name is a member of the glob
// collection: directly under its prefix, with the same context parameters (X2).
func (g Glob) Matches(name string) bool {
	path, params, _ := strings.Cut(name, "?")
	if !strings.HasPrefix(path, g.prefix) || params != g.params {
		return false
	}
	id := path[len(g.prefix):]
	return id != "" && id != "*" && !strings.Contains(id, "/")
}
