package xdstest

import (
	"fmt"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/stretchr/testify/require"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validatable is what protoc-gen-validate generates on every Envoy message.
type validatable interface{ ValidateAll() error }

// requireValid fails t unless m and every message packed in an Any inside it,
// at any depth, pass their generated ValidateAll. It returns the type URLs of the
// Any payloads it checked, in the order met, so a test can tell they were seen.
func requireValid(t *testing.T, m proto.Message) []string {
	t.Helper()
	var payloads []string
	if err := validateDeep(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), &payloads); err != nil {
		t.Fatalf("%T is not valid: %v", m, err)
	}
	return payloads
}

func validateDeep(m protoreflect.Message, path string, payloads *[]string) error {
	if packed, ok := m.Interface().(*anypb.Any); ok {
		inner, err := packed.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: unpacking %s: %w", path, packed.GetTypeUrl(), err)
		}
		*payloads = append(*payloads, packed.GetTypeUrl())
		return validateDeep(inner.ProtoReflect(), path+"("+string(inner.ProtoReflect().Descriptor().Name())+")", payloads)
	}
	if v, ok := m.Interface().(validatable); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		fieldPath := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			list := val.List()
			for i := 0; i < list.Len() && err == nil; i++ {
				err = validateDeep(list.Get(i).Message(), fmt.Sprintf("%s[%d]", fieldPath, i), payloads)
			}
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			val.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				err = validateDeep(v.Message(), fmt.Sprintf("%s[%v]", fieldPath, k.Interface()), payloads)
				return err == nil
			})
		default:
			err = validateDeep(val.Message(), fieldPath, payloads)
		}
		return err == nil
	})
	return err
}

func TestRequireValidCatchesNestedPayloads(t *testing.T) {
	// A listener whose HCM lacks its stat_prefix: the listener itself validates
	// (typed_config is opaque to it), so only the deep walk sees the fault.
	l := Listener("l", 80, "r")
	hcm := httpConnectionManager("", "r")
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: Any(hcm)}
	require.NoError(t, l.ValidateAll(), "the listener alone does not look into typed_config")
	var payloads []string
	err := validateDeep(l.ProtoReflect(), "Listener", &payloads)
	require.ErrorContains(t, err, "StatPrefix")
}
