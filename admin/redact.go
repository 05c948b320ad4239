package admin

import (
	"github.com/cncf/xds/go/udpa/annotations"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// redacted replaces the value of a sensitive field in what the admin page and
// CSDS show, as Envoy's own config dump does.
const redacted = "[redacted]"

// redact blanks, in place, every field of m that Envoy's protos mark
// (udpa.annotations.sensitive): private keys, passwords, session ticket keys,
// generic secrets. Debug output is for people and tools, and must never carry
// key material. A DataSource that names a file or an environment variable
// is kept: it holds where the secret is, not the secret.
func redact(m proto.Message) {
	redactMessage(m.ProtoReflect())
}

func redactMessage(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if sensitive(fd) {
			redactField(m, fd, v)
			return true
		}
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				redactMessage(l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					redactMessage(mv.Message())
					return true
				})
			}
		default:
			redactMessage(v.Message())
		}
		return true
	})
}

func sensitive(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil {
		return false
	}
	s, _ := proto.GetExtension(opts, annotations.E_Sensitive).(bool)
	return s
}

func redactField(m protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	if fd.IsList() || fd.IsMap() {
		m.Clear(fd)
		return
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		m.Set(fd, protoreflect.ValueOfString(redacted))
	case protoreflect.BytesKind:
		m.Set(fd, protoreflect.ValueOfBytes([]byte(redacted)))
	case protoreflect.MessageKind:
		if ds, ok := v.Message().Interface().(*corev3.DataSource); ok {
			switch ds.GetSpecifier().(type) {
			case *corev3.DataSource_Filename, *corev3.DataSource_EnvironmentVariable:
				return
			}
			m.Set(fd, protoreflect.ValueOfMessage((&corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: redacted},
			}).ProtoReflect()))
			return
		}
		m.Clear(fd)
	default:
		m.Clear(fd)
	}
}

// displayMessage decodes an entry for display, with its sensitive fields redacted.
func displayMessage(e *store.Entry) (proto.Message, error) {
	m, err := resources.Decode(e.TypeURL, e.Body)
	if err != nil {
		return nil, err
	}
	redact(m)
	return m, nil
}

// displayAny packs an entry in an Any for CSDS. Only secrets have sensitive
// fields at their top level, so the other types are sent as stored, without
// decoding them.
func displayAny(e *store.Entry) (*anypb.Any, error) {
	if e.TypeURL != protocol.TypeSecret {
		return &anypb.Any{TypeUrl: e.TypeURL, Value: e.Body}, nil
	}
	m, err := displayMessage(e)
	if err != nil {
		return nil, err
	}
	return anypb.New(m)
}
