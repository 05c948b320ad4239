package conv

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/leanxds/leanxds/protocol"
)

// Match checks one property of a state-of-the-world response and says what
// differs when it does not hold.
type Match func(*Response) error

// DeltaMatch checks one property of an incremental response and says what differs
// when it does not hold.
type DeltaMatch func(*DeltaResponse) error

// TypeURL matches a response of type u.
func TypeURL(u string) Match {
	return func(r *Response) error { return sameType(r.GetTypeUrl(), u) }
}

// Version matches a response whose version_info is v.
func Version(v string) Match {
	return func(r *Response) error {
		if got := r.Version(); got != v {
			return fmt.Errorf("version: got %q, want %q", got, v)
		}
		return nil
	}
}

// VersionNot matches a response whose version_info is anything but v, for a
// version that must have moved on without the test knowing its new value.
func VersionNot(v string) Match {
	return func(r *Response) error {
		if r.Version() == v {
			return fmt.Errorf("version: got %q, want any other", v)
		}
		return nil
	}
}

// Names matches a response that carries exactly the resources names, in any
// order.
func Names(names ...string) Match {
	return func(r *Response) error { return sameSet("names", r.Names(), names) }
}

// NamesInOrder matches a response that carries exactly the resources names, in
// that order.
func NamesInOrder(names ...string) Match {
	return func(r *Response) error {
		if got := r.Names(); !slices.Equal(got, names) {
			return fmt.Errorf("names in order: got %s, want %s", list(got), list(names))
		}
		return nil
	}
}

// Empty matches a response with no resources: for a full-state type, one that
// deletes everything the client holds (S1).
func Empty() Match {
	return func(r *Response) error {
		if n := len(r.GetResources()); n > 0 {
			return fmt.Errorf("want no resources, got %d: %s", n, list(r.Names()))
		}
		return nil
	}
}

// Nonce matches a response whose nonce is n.
func Nonce(n string) Match {
	return func(r *Response) error {
		if got := r.Nonce(); got != n {
			return fmt.Errorf("nonce: got %q, want %q", got, n)
		}
		return nil
	}
}

// Check turns f into a Match, for a property no other matcher covers.
func Check(f func(*Response) error) Match { return f }

// DTypeURL matches an incremental response of type u.
func DTypeURL(u string) DeltaMatch {
	return func(r *DeltaResponse) error { return sameType(r.GetTypeUrl(), u) }
}

// Updated matches an incremental response that adds or changes exactly the
// resources names, in any order.
func Updated(names ...string) DeltaMatch {
	return func(r *DeltaResponse) error { return sameSet("updated", r.Updated(), names) }
}

// Removed matches an incremental response that announces exactly names as
// removed, in any order (D7).
func Removed(names ...string) DeltaMatch {
	return func(r *DeltaResponse) error { return sameSet("removed", r.Removed(), names) }
}

// NoRemoved matches an incremental response that removes nothing.
func NoRemoved() DeltaMatch {
	return func(r *DeltaResponse) error {
		if got := r.Removed(); len(got) > 0 {
			return fmt.Errorf("removed: got %s, want none", list(got))
		}
		return nil
	}
}

// VersionOf matches an incremental response that updates the resource called name
// to version v.
func VersionOf(name, v string) DeltaMatch {
	return func(r *DeltaResponse) error {
		res := r.find(name)
		switch {
		case res == nil:
			return fmt.Errorf("version of %q: not updated (updated: %s), want %q", name, list(r.Updated()), v)
		case res.GetVersion() != v:
			return fmt.Errorf("version of %q: got %q, want %q", name, res.GetVersion(), v)
		}
		return nil
	}
}

// DCheck turns f into a DeltaMatch, for a property no other matcher covers.
func DCheck(f func(*DeltaResponse) error) DeltaMatch { return f }

// matchAll runs every matcher and joins what they report.
func matchAll[R any, M ~func(R) error](r R, ms []M) error {
	var errs []error
	for _, m := range ms {
		errs = append(errs, m(r))
	}
	return errors.Join(errs...)
}

func sameType(got, want string) error {
	if got == want {
		return nil
	}
	return fmt.Errorf("type: got %s, want %s", typeName(got), typeName(want))
}

// typeName names a type URL in failure messages: its short name ("CDS") for a
// served type, the URL itself otherwise, "" quoted when unset.
func typeName(typeURL string) string {
	if typeURL == "" {
		return `""`
	}
	return protocol.Short(typeURL)
}

// sameSet compares got and want as multisets and names what is missing from got
// and what it holds unexpectedly.
func sameSet(what string, got, want []string) error {
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if slices.Equal(g, w) {
		return nil
	}
	var missing, unexpected []string
	i, j := 0, 0
	for i < len(g) || j < len(w) {
		switch {
		case j == len(w) || (i < len(g) && g[i] < w[j]):
			unexpected = append(unexpected, g[i])
			i++
		case i == len(g) || w[j] < g[i]:
			missing = append(missing, w[j])
			j++
		default:
			i++
			j++
		}
	}
	var diff []string
	if len(missing) > 0 {
		diff = append(diff, "missing "+list(missing))
	}
	if len(unexpected) > 0 {
		diff = append(diff, "unexpected "+list(unexpected))
	}
	return fmt.Errorf("%s: got %s, want %s (%s)", what, list(got), list(want), strings.Join(diff, ", "))
}

// list formats names for failure messages: [a b c], with quotes only where a name
// is empty or holds spaces.
func list(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		if n == "" || strings.ContainsAny(n, " \t\n") {
			n = fmt.Sprintf("%q", n)
		}
		parts[i] = n
	}
	return "[" + strings.Join(parts, " ") + "]"
}
