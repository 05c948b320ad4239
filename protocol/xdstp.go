package protocol

import (
	"slices"
	"strings"
)

// xdstp names (cncf/xds TP1): xdstp://authority/type/id?context-params.
const xdstpScheme = "xdstp://"

// IsXdstp reports whether a resource name is an xdstp URI.
func IsXdstp(name string) bool { return strings.HasPrefix(name, xdstpScheme) }

// NormalizeName returns the name a resource is looked up by: an xdstp name with
// its context parameters sorted (X1: names that differ only in the order of their
// parameters are the same resource); any other name as it is.
//
// The parameters are sorted as written, by key and then by the whole key=value
// pair: nothing is unescaped or escaped again, so a name whose parameters are in
// order already is its own normal form, byte for byte (a client that spelled it so
// recognises it in a response, X4). Empty pairs ("a=1&&b=2", a trailing "&") are
// dropped. A name whose parameters are in order is returned without allocating.
func NormalizeName(name string) string {
	if !IsXdstp(name) {
		return name
	}
	path, query, hasQuery := strings.Cut(name, "?")
	if !hasQuery || paramsInOrder(query) {
		return name
	}
	var params []string
	for p := range strings.SplitSeq(query, "&") {
		if p != "" {
			params = append(params, p)
		}
	}
	if len(params) == 0 {
		return path
	}
	slices.SortStableFunc(params, compareParams)
	return path + "?" + strings.Join(params, "&")
}

// paramsInOrder reports whether a query is already in normal form: no empty pair,
// and each pair in order after the one before it.
func paramsInOrder(query string) bool {
	prev := ""
	for p := range strings.SplitSeq(query, "&") {
		if p == "" || (prev != "" && compareParams(prev, p) > 0) {
			return false
		}
		prev = p
	}
	return true
}

// compareParams orders context parameters by key, then by the raw key=value pair
// (one key may be given several values).
func compareParams(a, b string) int {
	ka, _, _ := strings.Cut(a, "=")
	kb, _, _ := strings.Cut(b, "=")
	if c := strings.Compare(ka, kb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
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
