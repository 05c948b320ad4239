package resources

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/protocol"
)

// ValidationError is one constraint a resource breaks.
type ValidationError struct {
	// TypeURL is the type of the resource.
	TypeURL string
	// Name is the resource's name, "" when it has none.
	Name string
	// Field is the path to the offending field in proto field names, with list
	// indexes and map keys in brackets and an Any's payload reached through the Any
	// field itself: "filter_chains[0].filters[0].typed_config.stat_prefix". It is ""
	// when the error is about the resource as a whole.
	Field string
	// Reason says what is wrong with the field.
	Reason string
}

// Error formats the error as `CDS "web": connect_timeout: value must be greater than 0s`.
func (e *ValidationError) Error() string {
	if e.Name == "" {
		return protocol.Short(e.TypeURL) + ": " + e.detail()
	}
	return fmt.Sprintf("%s %q: %s", protocol.Short(e.TypeURL), e.Name, e.detail())
}

// detail is the error without the resource it is about, for callers (LoadError)
// that already name the resource.
func (e *ValidationError) detail() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Validate checks a resource before it is served, so that a client never gets a
// resource it would NACK for a reason known here: m must be of type typeURL, carry
// the name it is served under (name; "" means the message's own name), and satisfy
// the constraints Envoy's protos declare (the generated ValidateAll), including those
// of every extension config nested in an Any whose type is registered. The error is
// a *ValidationError, or several joined with errors.Join.
func Validate(typeURL, name string, m proto.Message) error {
	if m == nil {
		return &ValidationError{TypeURL: typeURL, Name: name, Reason: "no message"}
	}
	if got, err := TypeURLOf(m); err != nil || got != typeURL {
		return &ValidationError{TypeURL: typeURL, Name: name, Reason: fmt.Sprintf(
			"message is a %s, not a %s", m.ProtoReflect().Descriptor().FullName(), typeURL)}
	}
	own := NameOf(m)
	if name == "" {
		name = own
	}
	// An LbEndpoint is named from outside (LEDS), so it alone may arrive unnamed
	// here; every other resource is addressed by its name field.
	if name == "" && typeURL != protocol.TypeLbEndpoint {
		return &ValidationError{TypeURL: typeURL, Field: nameField(typeURL), Reason: "must not be empty"}
	}
	// A client files a resource under its own name field, not under the name of the
	// subscription that brought it.
	if own != "" && own != name {
		return &ValidationError{TypeURL: typeURL, Name: name, Field: nameField(typeURL),
			Reason: fmt.Sprintf("is %q, but the resource is served as %q", own, name)}
	}
	v := validator{typeURL: typeURL, name: name}
	v.check("", m.ProtoReflect())
	return errors.Join(v.errs...)
}

// validator collects the violations found in one resource.
type validator struct {
	typeURL, name string
	errs          []error
}

// check validates msg, found at path, and every Any payload nested in it. The
// generated ValidateAll stops at an Any (it cannot know the payload's type), so the
// walk unpacks each Any itself and validates the payload in turn.
func (v *validator) check(path string, msg protoreflect.Message) {
	if va, ok := msg.Interface().(interface{ ValidateAll() error }); ok {
		if err := va.ValidateAll(); err != nil {
			v.addPGV(path, err)
		}
	}
	v.walk(path, msg)
}

// walk visits the set message fields of msg in declaration order, so errors come out
// in a stable order, checking each message on the way for what Envoy refuses
// beyond its protos' declared constraints (envoyCheck).
func (v *validator) walk(path string, msg protoreflect.Message) {
	v.envoyCheck(path, msg)
	fields := msg.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !msg.Has(fd) {
			continue
		}
		p := joinPath(path, string(fd.Name()))
		val := msg.Get(fd)
		switch {
		case fd.IsList():
			if fd.Message() == nil {
				continue
			}
			l := val.List()
			for j := range l.Len() {
				v.visit(fmt.Sprintf("%s[%d]", p, j), l.Get(j).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				continue
			}
			m := val.Map()
			var keys []protoreflect.MapKey
			m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
				return strings.Compare(a.String(), b.String())
			})
			for _, k := range keys {
				v.visit(fmt.Sprintf("%s[%s]", p, k.String()), m.Get(k).Message())
			}
		case fd.Message() != nil:
			v.visit(p, val.Message())
		}
	}
}

// visit descends into a nested message, unpacking it first when it is an Any.
func (v *validator) visit(path string, msg protoreflect.Message) {
	a, ok := msg.Interface().(*anypb.Any)
	if !ok {
		v.walk(path, msg)
		return
	}
	inner, err := a.UnmarshalNew()
	switch {
	case errors.Is(err, protoregistry.NotFound):
		// An extension this build does not know: Envoy may, so let it decide.
		return
	case err != nil:
		v.errs = append(v.errs, &ValidationError{TypeURL: v.typeURL, Name: v.name, Field: path,
			Reason: plainSpaces(fmt.Sprintf("cannot decode %s: %v", a.GetTypeUrl(), err))})
		return
	}
	v.check(path, inner.ProtoReflect())
}

// pgvError is what every protoc-gen-validate XxxValidationError implements. Its
// Field is the Go name of a field of the message that failed ("FilterChains[0]"),
// and its Cause, when the field is a message, the error of that message.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
}

// pgvMultiError is what every protoc-gen-validate XxxMultiError implements:
// ValidateAll's collection of one message's violations.
type pgvMultiError interface {
	AllErrors() []error
}

// addPGV flattens a ValidateAll error, a tree of MultiErrors and ValidationErrors
// following the message tree, into one ValidationError per violated constraint,
// each with the full path from the resource.
func (v *validator) addPGV(path string, err error) {
	switch e := err.(type) {
	case pgvMultiError:
		for _, sub := range e.AllErrors() {
			v.addPGV(path, sub)
		}
	case pgvError:
		p := joinPath(path, snakeField(e.Field()))
		cause := e.Cause()
		_, nestedMulti := cause.(pgvMultiError)
		_, nested := cause.(pgvError)
		if nestedMulti || nested {
			v.addPGV(p, cause)
			return
		}
		reason := e.Reason()
		if cause != nil {
			reason += ": " + cause.Error()
		}
		v.errs = append(v.errs, &ValidationError{TypeURL: v.typeURL, Name: v.name, Field: p, Reason: reason})
	default:
		v.errs = append(v.errs, &ValidationError{TypeURL: v.typeURL, Name: v.name, Field: path, Reason: err.Error()})
	}
}

func joinPath(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

// snakeField turns protoc-gen-validate's Go field name ("FilterChains[0]",
// "TypedExtensionProtocolOptions[envoy.foo]") into the proto field name Envoy's docs
// use ("filter_chains[0]"), leaving an index or map key as it is. Go names are the
// proto names camel-cased, so an underscore before each inner capital restores them.
func snakeField(f string) string {
	name, rest := f, ""
	if i := strings.IndexByte(f, '['); i >= 0 {
		name, rest = f[:i], f[i:]
	}
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String() + rest
}
