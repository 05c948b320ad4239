package greeter

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// A greeter's answers name it; Spread counts them by backend.
func TestGreeter(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := grpc.NewServer()
	Register(g, "backend-a")
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })

	backend, err := SayHello(t.Context(), cc, "test")
	require.NoError(t, err)
	assert.Equal(t, "backend-a", backend)
	tally, err := Spread(t.Context(), cc, 3, 0)
	require.NoError(t, err)
	assert.Equal(t, Tally{"backend-a": 3}, tally)
	assert.Equal(t, 1.0, tally.Share("backend-a"))
	assert.Equal(t, 0.0, tally.Share("backend-b"))
}

func TestTallyString(t *testing.T) {
	tally := Tally{"127.0.0.1:50052": 3, "127.0.0.1:50051": 1}
	assert.Equal(t, 4, tally.Total())
	assert.Equal(t, "127.0.0.1:50051 1 (25%)  127.0.0.1:50052 3 (75%)", tally.String())
	assert.Equal(t, "", Tally{}.String())
}
