package conv

import (
	"errors"
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/resources"
)

// DeltaResponse is an incremental response as the client received it.
type DeltaResponse struct {
	*discoveryv3.DeltaDiscoveryResponse
}

// Updated returns the names of the resources the response adds or changes, in
// response order.
func (r *DeltaResponse) Updated() []string {
	names := make([]string, len(r.GetResources()))
	for i, res := range r.GetResources() {
		names[i] = deltaName(res)
	}
	return names
}

// Removed returns the names the response announces as removed (D7):
// removed_resources, then the names in removed_resource_names.
func (r *DeltaResponse) Removed() []string {
	names := slices.Clone(r.GetRemovedResources())
	for _, n := range r.GetRemovedResourceNames() {
		names = append(names, n.GetName())
	}
	return names
}

// VersionOf returns the version of the updated resource called name, "" if the
// response does not update it.
func (r *DeltaResponse) VersionOf(name string) string {
	if res := r.find(name); res != nil {
		return res.GetVersion()
	}
	return ""
}

// Resource returns the decoded body of the updated resource called name, or nil if
// the response does not update it, carries no body for it (a TTL heartbeat, R17)
// or the body does not decode.
func (r *DeltaResponse) Resource(name string) proto.Message {
	res := r.find(name)
	if res.GetResource() == nil {
		return nil
	}
	msg, err := resources.DecodeAny(res.GetResource())
	if err != nil {
		return nil
	}
	return msg
}

// String describes the response for failure messages: type, system version, nonce,
// updated and removed names.
func (r *DeltaResponse) String() string {
	return fmt.Sprintf("%s system_version=%q nonce=%q updated=%s removed=%s",
		typeName(r.GetTypeUrl()), r.GetSystemVersionInfo(), r.GetNonce(),
		list(r.Updated()), list(r.Removed()))
}

func (r *DeltaResponse) find(name string) *discoveryv3.Resource {
	for _, res := range r.GetResources() {
		if deltaName(res) == name {
			return res
		}
	}
	return nil
}

// deltaName is the name of an updated resource: the wrapper's name, or the name in
// its resource_name for a server that sets only that.
func deltaName(res *discoveryv3.Resource) string {
	if n := res.GetName(); n != "" {
		return n
	}
	return res.GetResourceName().GetName()
}

// checkDeltaResponse checks r against the rules every incremental response obeys,
// whatever the scenario, and records its nonce in seen, the nonces of the stream
// so far.
func checkDeltaResponse(seen map[string]bool, r *DeltaResponse) error {
	var errs []error
	errs = append(errs, checkNonce(seen, r.GetNonce()))
	updated := make(map[string]bool, len(r.GetResources()))
	for i, res := range r.GetResources() {
		name := deltaName(res)
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("resource %d has no name", i))
		case updated[name]:
			errs = append(errs, fmt.Errorf("R13: resource %q is updated more than once", name))
		}
		updated[name] = true
		if body := res.GetResource(); body != nil && body.GetTypeUrl() != r.GetTypeUrl() {
			errs = append(errs, fmt.Errorf("resource %q has type %s in a %s response",
				name, typeName(body.GetTypeUrl()), typeName(r.GetTypeUrl())))
		}
	}
	removed := make(map[string]bool)
	for _, name := range r.Removed() {
		switch {
		case removed[name]:
			errs = append(errs, fmt.Errorf("R13: resource %q is removed more than once", name))
		case updated[name]:
			errs = append(errs, fmt.Errorf("R13: resource %q is both updated and removed", name))
		}
		removed[name] = true
	}
	return errors.Join(errs...)
}
