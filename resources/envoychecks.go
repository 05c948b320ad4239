package resources

import (
	"fmt"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// envoyCheck checks msg, found at path, for what Envoy refuses beyond the
// constraints its protos declare (which ValidateAll checks): a client NACKs it
// as surely, and its message is far from the file. Each check is cheap: it
// looks at one message, and runs once per resource, when it is validated.
// docs/config.md lists them.
func (v *validator) envoyCheck(path string, msg protoreflect.Message) {
	switch m := msg.Interface().(type) {
	case *matcherv3.RegexMatcher:
		// A regex is compiled by RE2 when Envoy loads the config: one that does
		// not compile is refused. Go's regexp has RE2's syntax.
		v.checkRegex(path, m.GetRegex())
	case *routev3.RouteConfiguration:
		v.checkVirtualHosts(path, m)
	default:
		if msg.Descriptor().FullName() == "xds.type.matcher.v3.RegexMatcher" {
			if fd := msg.Descriptor().Fields().ByName("regex"); fd != nil {
				v.checkRegex(path, msg.Get(fd).String())
			}
		}
	}
}

// checkVirtualHosts refuses virtual hosts of one route configuration that share
// a name, or a domain, as Envoy does ("Only unique values for domains are
// permitted").
func (v *validator) checkVirtualHosts(path string, rc *routev3.RouteConfiguration) {
	names := make(map[string]int)
	domains := make(map[string]int)
	for i, vh := range rc.GetVirtualHosts() {
		vhPath := joinPath(path, fmt.Sprintf("virtual_hosts[%d]", i))
		if j, dup := names[vh.GetName()]; dup {
			v.fail(vhPath+".name", fmt.Sprintf("%q is also the name of virtual_hosts[%d]: names must be unique", vh.GetName(), j))
		} else {
			names[vh.GetName()] = i
		}
		for k, d := range vh.GetDomains() {
			key := strings.ToLower(d)
			if j, dup := domains[key]; dup {
				v.fail(fmt.Sprintf("%s.domains[%d]", vhPath, k),
					fmt.Sprintf("%q is also a domain of virtual_hosts[%d]: a domain may be in one virtual host only", d, j))
			} else {
				domains[key] = i
			}
		}
	}
}

// checkRegex refuses a regex that does not compile.
func (v *validator) checkRegex(path, re string) {
	if _, err := regexp.Compile(re); err != nil {
		reason := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
		v.fail(joinPath(path, "regex"), "does not compile (RE2 syntax): "+reason)
	}
}

// fail records a violation of the field at path.
func (v *validator) fail(path, reason string) {
	v.errs = append(v.errs, &ValidationError{TypeURL: v.typeURL, Name: v.name, Field: path, Reason: reason})
}
