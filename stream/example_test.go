package stream_test

import (
	"log"
	"net"

	"google.golang.org/grpc"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Embedding leanxds: commit resources to a store, serve it, and every connected
// client is kept correct and current as later commits change it.
func Example() {
	st := store.New()
	if _, err := st.Commit(
		store.Set("edge", xdstest.Cluster("web")),
		store.Set("edge", xdstest.Endpoints("web", "10.0.0.1:8080")),
	); err != nil {
		log.Fatal(err) // names every invalid resource and field; nothing changed
	}

	g := grpc.NewServer(stream.ServerOption()) // optional: shares response bytes without a copy
	stream.New(st, stream.Options{ScopeOf: stream.ScopeByCluster}).Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	// Later: a commit reaches every subscribed client; an identical one, nobody.
	_, _ = st.Commit(store.Set("edge", xdstest.Endpoints("web", "10.0.0.2:8080")))
}
