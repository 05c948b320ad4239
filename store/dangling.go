package store

import (
	"fmt"
	"strings"

	"github.com/leanxds/leanxds/protocol"
)

// Dangling is a reference from a resource to one its scope does not hold: a
// client that gets the resource waits for the other, which never comes, and the
// traffic meant for it is dropped meanwhile.
type Dangling struct {
	// FromType and From are the referring resource's type URL and name.
	FromType, From string
	// ToType and To are the missing resource's type URL and name.
	ToType, To string
}

// Dangling returns the references the resources of scope make to resources the
// scope does not hold, among those a client asks this server for
// (Entry.ServedRefs: a name whose config source is a file or another
// api_config_source is served from elsewhere). xdstp:// names are left out: they
// may be served by another authority. The answer is ordered by the referring
// resource's type (push order) and name, then by the kind of reference
// (resources.Refs.ByType) and the missing name.
//
// It reads the references worked out when each resource was committed; its cost
// is one lookup per reference the scope's resources make, O(resources of scope),
// plus, for a table no reader sorted yet, Table.Sorted, which is computed once
// per table and shared with every stream that reads it.
func (v View) Dangling(scope string) []Dangling {
	var out []Dangling
	for typeURL, t := range v.Tables(scope) {
		for _, e := range t.Sorted() {
			for toType, names := range e.ServedRefs().ByType() {
				to := v.Table(scope, toType)
				for _, n := range names {
					if to.Get(n) != nil || strings.Contains(n, "://") {
						continue
					}
					out = append(out, Dangling{FromType: typeURL, From: e.Name, ToType: toType, To: n})
				}
			}
		}
	}
	return out
}

// String says what is missing: `CDS "web" refers to EDS "web", which the scope
// does not hold`.
func (d Dangling) String() string {
	return fmt.Sprintf("%s %q refers to %s %q, which the scope does not hold",
		protocol.Short(d.FromType), d.From, protocol.Short(d.ToType), d.To)
}
