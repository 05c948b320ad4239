package xdstest

import (
	"fmt"

	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Runtime returns the RTDS layer name holding fields. The values must be what
// structpb.NewStruct accepts (nil, bool, numbers, string, []any, map[string]any).
func Runtime(name string, fields map[string]any) *runtimev3.Runtime {
	layer, err := structpb.NewStruct(fields)
	if err != nil {
		panic(fmt.Sprintf("xdstest: runtime %q: %v", name, err))
	}
	return &runtimev3.Runtime{Name: name, Layer: layer}
}
