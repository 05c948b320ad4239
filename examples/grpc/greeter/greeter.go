// Package greeter is the service of the proxyless gRPC example: one method,
// SayHello, whose answer names the backend that served it, so a client can
// count how its calls spread over the backends. Its messages are protobuf's
// StringValue and its service description is written out here, so that the
// example needs no generated code.
package greeter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Method is the full name of SayHello, as a client calls it.
const Method = "/leanxds.example.Greeter/SayHello"

// Register registers on g a greeter whose answers carry name.
func Register(g grpc.ServiceRegistrar, name string) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "leanxds.example.Greeter",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "SayHello",
			Handler: func(_ any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.StringValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				hello := func(context.Context, any) (any, error) {
					return wrapperspb.String("hello " + in.GetValue() + " from " + name), nil
				}
				if intercept == nil {
					return hello(ctx, in)
				}
				return intercept(ctx, in, &grpc.UnaryServerInfo{FullMethod: Method}, hello)
			},
		}},
	}, struct{}{})
}

// SayHello calls SayHello on cc for who, and returns the name of the backend
// that answered.
func SayHello(ctx context.Context, cc grpc.ClientConnInterface, who string, opts ...grpc.CallOption) (backend string, err error) {
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, Method, wrapperspb.String(who), out, opts...); err != nil {
		return "", err
	}
	_, backend, ok := strings.Cut(out.GetValue(), " from ")
	if !ok {
		return "", fmt.Errorf("unexpected answer %q", out.GetValue())
	}
	return backend, nil
}

// Tally counts the calls each backend answered.
type Tally map[string]int

// Spread makes n calls on cc, pause apart, and counts who answered them. It
// stops at the first error.
func Spread(ctx context.Context, cc grpc.ClientConnInterface, n int, pause time.Duration) (Tally, error) {
	t := Tally{}
	for i := range n {
		if i > 0 && pause > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return t, ctx.Err()
			}
		}
		backend, err := SayHello(ctx, cc, "client")
		if err != nil {
			return t, err
		}
		t[backend]++
	}
	return t, nil
}

// Total is the number of calls counted.
func (t Tally) Total() int {
	n := 0
	for _, c := range t {
		n += c
	}
	return n
}

// Share is the part of the calls backend answered, between 0 and 1.
func (t Tally) Share(backend string) float64 {
	if t.Total() == 0 {
		return 0
	}
	return float64(t[backend]) / float64(t.Total())
}

// String lists the backends by name with their calls and share:
// "127.0.0.1:50051 10 (50%)  127.0.0.1:50052 10 (50%)".
func (t Tally) String() string {
	names := make([]string, 0, len(t))
	for name := range t {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %d (%.0f%%)", name, t[name], 100*t.Share(name))
	}
	return strings.Join(parts, "  ")
}
