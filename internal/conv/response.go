package conv

import (
	"errors"
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/resources"
)

// resourceWrapperURL is the type URL of envoy.service.discovery.v3.Resource, which
// a SotW response may use to wrap a resource (TTL, R17).
const resourceWrapperURL = "type.googleapis.com/envoy.service.discovery.v3.Resource"

// Response is a state-of-the-world response as the client received it.
type Response struct {
	*discoveryv3.DiscoveryResponse
}

// Version returns the response's version_info.
func (r *Response) Version() string { return r.GetVersionInfo() }

// Nonce returns the response's nonce.
func (r *Response) Nonce() string { return r.GetNonce() }

// Names returns the name of each resource, in response order. A resource wrapped
// in an envoy.service.discovery.v3.Resource is named by the wrapper; one that
// cannot be decoded is named "".
func (r *Response) Names() []string {
	names := make([]string, len(r.GetResources()))
	for i, a := range r.GetResources() {
		e, _ := readEntry(a)
		names[i] = e.name
	}
	return names
}

// Resource returns the decoded resource called name, or nil if the response does
// not carry it (or carries only a TTL heartbeat for it, R17).
func (r *Response) Resource(name string) proto.Message {
	for _, a := range r.GetResources() {
		if e, err := readEntry(a); err == nil && e.name == name {
			return e.msg
		}
	}
	return nil
}

// String describes the response for failure messages: type, version, nonce and
// resource names.
func (r *Response) String() string {
	return fmt.Sprintf("%s version=%q nonce=%q names=%s",
		typeName(r.GetTypeUrl()), r.Version(), r.Nonce(), list(r.Names()))
}

// entry is one resource of a SotW response, unwrapped.
type entry struct {
	name string
	// body is the resource's own Any; nil for a TTL heartbeat (R17).
	body *anypb.Any
	// msg is body decoded; nil for a heartbeat.
	msg proto.Message
}

// readEntry unwraps and decodes one resource of a SotW response.
func readEntry(a *anypb.Any) (entry, error) {
	if a.GetTypeUrl() != resourceWrapperURL {
		msg, err := resources.DecodeAny(a)
		if err != nil {
			return entry{}, err
		}
		return entry{name: resources.NameOf(msg), body: a, msg: msg}, nil
	}
	w := new(discoveryv3.Resource)
	if err := a.UnmarshalTo(w); err != nil {
		return entry{}, fmt.Errorf("decode Resource wrapper: %w", err)
	}
	e := entry{name: w.GetName(), body: w.GetResource()}
	if e.body == nil {
		return e, nil
	}
	msg, err := resources.DecodeAny(e.body)
	if err != nil {
		return entry{}, fmt.Errorf("resource %q: %w", e.name, err)
	}
	e.msg = msg
	if e.name == "" {
		e.name = resources.NameOf(msg)
	}
	return e, nil
}

// checkResponse checks r against the rules every SotW response obeys, whatever the
// scenario, and records its nonce in seen, the nonces of the stream so far.
func checkResponse(seen map[string]bool, r *Response) error {
	var errs []error
	errs = append(errs, checkNonce(seen, r.Nonce()))
	names := make(map[string]bool, len(r.GetResources()))
	for i, a := range r.GetResources() {
		e, err := readEntry(a)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("resource %d: %w", i, err))
			continue
		case e.body != nil && e.body.GetTypeUrl() != r.GetTypeUrl():
			errs = append(errs, fmt.Errorf("resource %q has type %s in a %s response",
				e.name, typeName(e.body.GetTypeUrl()), typeName(r.GetTypeUrl())))
		}
		if names[e.name] {
			errs = append(errs, fmt.Errorf("R13: resource %q appears more than once", e.name))
		}
		names[e.name] = true
	}
	return errors.Join(errs...)
}

// checkNonce checks that a response's nonce is set and new on its stream (R1, D1),
// and records it in seen.
func checkNonce(seen map[string]bool, nonce string) error {
	switch {
	case nonce == "":
		return errors.New("R1: the response has no nonce")
	case seen[nonce]:
		return fmt.Errorf("R1: nonce %q was already used on this stream", nonce)
	}
	seen[nonce] = true
	return nil
}
