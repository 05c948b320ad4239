package source

import (
	"errors"
	"fmt"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
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

// danglingRefs returns the references each resource of c makes to one its
// scope does not define, as the store works them out from what it keeps
// (store.View.Dangling): next is the view the commit of c would publish
// (store.CommitChecked), in which each scope of c holds c's resources alone.
// Among a resource's references count those a client asks this server for
// (resources.ServedReferences): a name whose config source is a file or
// another api_config_source, such as an EDS cluster's endpoints read from a
// path, is served from elsewhere. xdstp:// names are left alone too: they may
// be served by another authority.
func danglingRefs(c *configDir, next store.View) []*DanglingRefError {
	var out []*DanglingRefError
	for _, scope := range c.scopeNames() {
		dangling := next.Dangling(scope)
		if len(dangling) == 0 {
			continue
		}
		type key struct{ typeURL, name string }
		file := make(map[key]string, len(c.scopes[scope]))
		for _, r := range c.scopes[scope] {
			file[key{r.TypeURL, protocol.NormalizeName(r.Name)}] = r.file
		}
		for _, d := range dangling {
			out = append(out, &DanglingRefError{File: file[key{d.FromType, d.From}], Scope: scope,
				FromType: d.FromType, From: d.From, ToType: d.ToType, To: d.To})
		}
	}
	return out
}

// checkRefs applies the policy on the dangling references of next (see
// danglingRefs): by default they refuse the config, the error joining one
// *DanglingRefError each; with allowDangling they are returned as warnings,
// one line each, and the config is served.
func (c *configDir) checkRefs(next store.View, allowDangling bool) (warnings []string, err error) {
	dangling := danglingRefs(c, next)
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
