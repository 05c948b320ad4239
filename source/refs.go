package source

import (
	"errors"
	"fmt"
	"strings"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
)

// DanglingRefError is a reference from a resource to one its scope does not
// define: a client that gets the resource waits for the other, which never
// comes, and the traffic meant for it is dropped meanwhile. A config with one
// is refused, unless DirOptions.AllowDangling makes it a warning.
type DanglingRefError struct {
	// File and Scope are where the referring resource was read.
	File, Scope string
	// FromType and From are the referring resource's type URL and name.
	FromType, From string
	// ToType and To are the missing resource's type URL and name.
	ToType, To string
}

func (d *DanglingRefError) Error() string {
	return fmt.Sprintf("%s: scope %q: %s %q refers to %s %q, which no file of the scope defines",
		d.File, d.Scope, protocol.Short(d.FromType), d.From, protocol.Short(d.ToType), d.To)
}

// HasDangling reports whether err refuses a config for a dangling reference.
func HasDangling(err error) bool {
	_, ok := errors.AsType[*DanglingRefError](err)
	return ok
}

// refKind is the names of one kind of reference and the type they name.
type refKind struct {
	typeURL string
	names   []string
}

// refKinds pairs each kind of reference refs makes with the type it names.
func refKinds(refs resources.Refs) []refKind {
	return []refKind{
		{protocol.TypeRoute, refs.Routes},
		{protocol.TypeScopedRoute, refs.ScopedRoutes},
		{protocol.TypeCluster, refs.Clusters},
		{protocol.TypeEndpoint, refs.Endpoints},
		{protocol.TypeSecret, refs.Secrets},
		{protocol.TypeExtensionCfg, refs.ExtensionConfigs},
	}
}

// danglingRefs returns the references each resource of c makes to one its
// scope does not define, among those a client asks this server for
// (resources.ServedReferences): a name whose config source is a file or
// another api_config_source, such as an EDS cluster's endpoints read from a
// path, is served from elsewhere. xdstp:// names are left alone too: they may
// be served by another authority.
//
// It is the one place references are worked out for the directory, so that it
// can take them from the store instead once the store keeps them.
func danglingRefs(c *configDir) []*DanglingRefError {
	var out []*DanglingRefError
	for _, scope := range c.scopeNames() {
		have := make(map[string]map[string]bool)
		for _, r := range c.scopes[scope] {
			if have[r.TypeURL] == nil {
				have[r.TypeURL] = make(map[string]bool)
			}
			have[r.TypeURL][r.Name] = true
		}
		for _, r := range c.scopes[scope] {
			for _, k := range refKinds(resources.ServedReferences(r.TypeURL, r.Message)) {
				for _, n := range k.names {
					if have[k.typeURL][n] || strings.Contains(n, "://") {
						continue
					}
					out = append(out, &DanglingRefError{File: r.file, Scope: scope,
						FromType: r.TypeURL, From: r.Name, ToType: k.typeURL, To: n})
				}
			}
		}
	}
	return out
}

// checkRefs applies the policy on dangling references: by default they refuse
// the config, the error joining one *DanglingRefError each; with allowDangling
// they are returned as warnings, one line each, and the config is served.
func (c *configDir) checkRefs(allowDangling bool) (warnings []string, err error) {
	dangling := danglingRefs(c)
	if !allowDangling {
		errs := make([]error, len(dangling))
		for i, d := range dangling {
			errs[i] = d
		}
		return nil, errors.Join(errs...)
	}
	for _, d := range dangling {
		warnings = append(warnings, d.Error())
	}
	return warnings, nil
}
