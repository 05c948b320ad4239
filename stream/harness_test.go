package stream_test

import (
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// env is a leanxds server on 127.0.0.1 with a client connection to it.
type env struct {
	st  *store.Store
	srv *stream.Server
	cc  *grpc.ClientConn
}

func newEnv(t testing.TB, opts ...func(*stream.Options)) *env {
	t.Helper()
	st := store.New()
	return newEnvWith(t, st, opts...)
}

// newEnvWith starts a server over an existing store: a restarted process holding
// the same content.
func newEnvWith(t testing.TB, st *store.Store, opts ...func(*stream.Options)) *env {
	t.Helper()
	var o stream.Options
	for _, f := range opts {
		f(&o)
	}
	srv := stream.New(st, o)
	g := grpc.NewServer(stream.ServerOption())
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cc.Close()
		g.Stop()
	})
	return &env{st: st, srv: srv, cc: cc}
}

func (e *env) commit(t testing.TB, changes ...store.Change) {
	t.Helper()
	_, err := e.st.Commit(changes...)
	require.NoError(t, err)
}

// status returns the server's view of the only stream of node id, waiting briefly
// for it to appear and for cond to hold.
func (e *env) status(t testing.TB, id string, cond func(stream.StreamStatus) bool) stream.StreamStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range e.srv.Streams() {
			if s.NodeID == id && (cond == nil || cond(s)) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream of node %q in the expected state; streams: %+v", id, e.srv.Streams())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func typeStatus(s stream.StreamStatus, typeURL string) stream.TypeStatus {
	for _, t := range s.Types {
		if t.TypeURL == typeURL {
			return t
		}
	}
	return stream.TypeStatus{}
}

func node(id, cluster string) *corev3.Node { return &corev3.Node{Id: id, Cluster: cluster} }

const scope = "edge"

// Type URLs, short.
const (
	cds = protocol.TypeCluster
	eds = protocol.TypeEndpoint
	lds = protocol.TypeListener
	rds = protocol.TypeRoute
)

// clusters sets a cluster of each name in scope.
func clusters(names ...string) []store.Change {
	var out []store.Change
	for _, n := range names {
		out = append(out, store.Set(scope, xdstest.Cluster(n)))
	}
	return out
}

// eps sets the endpoints of cluster name in scope: one address.
func eps(name, addr string) store.Change { return store.Set(scope, xdstest.Endpoints(name, addr)) }

var edge = node("envoy-1", scope)

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}
