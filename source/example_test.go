package source_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
)

// A program serving a config directory of its own: the source loads it into
// the store the program serves (stream.New(st, ...)), then Run keeps the store
// equal to the directory until the program stops.
func ExampleDir() {
	dir, err := os.MkdirTemp("", "config")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cluster := `"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: web
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}
`
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(cluster), 0o644); err != nil {
		log.Fatal(err)
	}

	st := store.New()
	src := source.NewDir(dir, st, source.DirOptions{})
	ctx := context.Background()
	if _, err := src.Load(ctx); err != nil {
		log.Fatal(err) // nothing to serve: every bad file, resource and field is named
	}
	status := src.Status()
	fmt.Println("loaded:", status.Loaded, "files:", status.Files, "resources:", status.Resources())
	fmt.Println("web:", st.View().Table(source.DefaultScope, protocol.TypeCluster).Get("web") != nil)

	// The program would now run the source until it stops:
	//	go src.Run(ctx)

	// Output:
	// loaded: true files: 1 resources: 1
	// web: true
}
