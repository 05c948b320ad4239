package resources

import (
	"errors"
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/protocol"
)

// Resource is one named resource of a served type.
type Resource struct {
	// TypeURL is the resource's type URL, one of the protocol.Type* constants.
	TypeURL string
	// Name is the name clients subscribe to. It equals NameOf(Message), except for
	// an LbEndpoint (LEDS), whose name comes from outside the message.
	Name string
	// Message is the decoded resource; its Go type is the one registered for TypeURL.
	// A validated resource is committed as it was validated (store.SetResource):
	// changes made to its message since are not seen. Check it again instead.
	Message proto.Message

	// checked is what Validate accepted, when Parse or Check made the resource.
	checked *checked
}

// checked is the type URL, name and message Validate accepted, and what was
// worked out of the message then: its deterministic encoding and references.
type checked struct {
	typeURL, name string
	m             proto.Message
	body          []byte
	refs          CheckedRefs
}

// CheckedRefs are the references of a validated resource, worked out when it
// was validated (see ReferencesAndServed).
type CheckedRefs struct {
	All, Served Refs
}

// Validated reports whether r is a resource Parse, Load or Check validated,
// with the type URL, name and message they validated. The store does not
// validate such a resource again: it commits the encoding and references
// made when it was validated (store.SetResource). A resource whose TypeURL,
// Name or Message was replaced since is not Validated; one whose message's
// fields were changed in place still is, and is committed as it was
// validated.
func (r Resource) Validated() bool {
	return r.checked != nil && r.checked.m == r.Message &&
		r.checked.typeURL == r.TypeURL && r.checked.name == r.Name
}

// References returns the references of a Validated resource as they were
// worked out when it was validated, or nil for a resource that is not
// Validated. Do not modify them.
func (r Resource) References() *CheckedRefs {
	if !r.Validated() {
		return nil
	}
	return &r.checked.refs
}

// Check validates m as a resource of type typeURL served under name ("": the
// message's own name) and returns it as a validated Resource, for a program that
// builds resources itself and wants them checked before it commits them.
func Check(typeURL, name string, m proto.Message) (Resource, error) {
	if name == "" {
		name = NameOf(m)
	}
	if err := Validate(typeURL, name, m); err != nil {
		return Resource{}, err
	}
	return validated(typeURL, name, m), nil
}

// Encoded returns the deterministic protobuf encoding of a Validated
// resource, made once when it was validated, or nil for a resource that is not
// Validated. It is what the store compares with what it holds, so that a
// resource loaded again unchanged is not encoded again (store.SetResource).
// Do not modify it.
func (r Resource) Encoded() []byte {
	if !r.Validated() {
		return nil
	}
	return r.checked.body
}

// deterministic is how resources are encoded for the store: the same message
// always has the same bytes, so its content version is stable (S3, D8).
var deterministic = proto.MarshalOptions{Deterministic: true}

// validated returns the resource Validate accepted, with its encoding (nil if
// it cannot be encoded: the store then encodes it and reports why not).
func validated(typeURL, name string, m proto.Message) Resource {
	body, err := deterministic.Marshal(m)
	if err != nil {
		body = nil
	} else if body == nil {
		body = []byte{} // an empty message has an encoding: no bytes
	}
	all, served := ReferencesAndServed(typeURL, m)
	return Resource{TypeURL: typeURL, Name: name, Message: m,
		checked: &checked{typeURL: typeURL, name: name, m: m, body: body, refs: CheckedRefs{All: all, Served: served}}}
}

// ErrUnknownType is wrapped by the errors this package returns for a type URL or a
// message that is not one of the served resource types.
var ErrUnknownType = errors.New("not a served resource type")

// typeURLPrefix is what every served type URL starts with; Envoy accepts no other.
const typeURLPrefix = "type.googleapis.com/"

// registry maps every served type URL to its generated Go type. Listing the types
// here, rather than asking protoregistry, makes the imports that register them part
// of this package and lets the compiler check them.
var registry = map[string]protoreflect.MessageType{
	protocol.TypeListener:     (&listenerv3.Listener{}).ProtoReflect().Type(),
	protocol.TypeRoute:        (&routev3.RouteConfiguration{}).ProtoReflect().Type(),
	protocol.TypeScopedRoute:  (&routev3.ScopedRouteConfiguration{}).ProtoReflect().Type(),
	protocol.TypeVirtualHost:  (&routev3.VirtualHost{}).ProtoReflect().Type(),
	protocol.TypeCluster:      (&clusterv3.Cluster{}).ProtoReflect().Type(),
	protocol.TypeEndpoint:     (&endpointv3.ClusterLoadAssignment{}).ProtoReflect().Type(),
	protocol.TypeLbEndpoint:   (&endpointv3.LbEndpoint{}).ProtoReflect().Type(),
	protocol.TypeSecret:       (&tlsv3.Secret{}).ProtoReflect().Type(),
	protocol.TypeRuntime:      (&runtimev3.Runtime{}).ProtoReflect().Type(),
	protocol.TypeExtensionCfg: (&corev3.TypedExtensionConfig{}).ProtoReflect().Type(),
}

// typeURLs maps the full name of each served message type to its type URL, so
// that TypeURLOf does not build a string.
var typeURLs = func() map[protoreflect.FullName]string {
	m := make(map[protoreflect.FullName]string, len(registry))
	for u, mt := range registry {
		m[mt.Descriptor().FullName()] = u
	}
	return m
}()

// Known reports whether typeURL is a served resource type.
func Known(typeURL string) bool {
	_, ok := registry[typeURL]
	return ok
}

// NewMessage returns a fresh empty message of the served type typeURL.
func NewMessage(typeURL string) (proto.Message, error) {
	mt, ok := registry[typeURL]
	if !ok {
		return nil, fmt.Errorf("%q: %w (served: %s)", typeURL, ErrUnknownType, servedShortNames())
	}
	return mt.New().Interface(), nil
}

// Decode unmarshals the wire encoding b of a resource of type typeURL.
func Decode(typeURL string, b []byte) (proto.Message, error) {
	m, err := NewMessage(typeURL)
	if err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", protocol.Short(typeURL), err)
	}
	return m, nil
}

// DecodeAny unpacks a resource carried in an Any, as in a DiscoveryResponse.
func DecodeAny(a *anypb.Any) (proto.Message, error) {
	if a == nil {
		return nil, errors.New("decode: nil Any")
	}
	return Decode(a.GetTypeUrl(), a.GetValue())
}

// TypeURLOf returns the type URL of m, which must be of a served type.
func TypeURLOf(m proto.Message) (string, error) {
	if m == nil {
		return "", fmt.Errorf("nil message: %w", ErrUnknownType)
	}
	name := m.ProtoReflect().Descriptor().FullName()
	if u, ok := typeURLs[name]; ok {
		return u, nil
	}
	return "", fmt.Errorf("%q: %w (served: %s)", typeURLPrefix+string(name), ErrUnknownType, servedShortNames())
}

// NameOf returns the name a resource carries in its own fields: the name field of
// most types, cluster_name of a ClusterLoadAssignment. An LbEndpoint has none, so
// its LEDS name must come from elsewhere; NameOf returns "" for it and for a message
// of a type that is not served.
func NameOf(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *routev3.ScopedRouteConfiguration:
		return r.GetName()
	case *routev3.VirtualHost:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *tlsv3.Secret:
		return r.GetName()
	case *runtimev3.Runtime:
		return r.GetName()
	case *corev3.TypedExtensionConfig:
		return r.GetName()
	}
	return ""
}

// nameField is the proto field NameOf reads, for error messages.
func nameField(typeURL string) string {
	if typeURL == protocol.TypeEndpoint {
		return "cluster_name"
	}
	return "name"
}

// servedShortNames lists the served types by short name, in push order, so an error
// about an unknown type shows what would have been accepted.
func servedShortNames() string {
	var names []string
	for _, t := range protocol.Types() {
		names = append(names, t.Short)
	}
	return strings.Join(names, ", ")
}
