package persist_test

import (
	"context"
	"net"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// serve starts a leanxds stream server over st on 127.0.0.1 and returns a client
// connection to it and a function that stops it, as a process exit would.
func serve(t *testing.T, st *store.Store) (*grpc.ClientConn, func()) {
	t.Helper()
	g := grpc.NewServer(stream.ServerOption())
	stream.New(st, stream.Options{Logger: quiet}).Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	stop := func() {
		_ = cc.Close()
		g.Stop()
	}
	t.Cleanup(stop)
	return cc, stop
}

func envoy(id string) *corev3.Node { return &corev3.Node{Id: id, Cluster: "edge"} }

// S3, S6, D3, D8: a server restarted from its snapshot serves the same versions,
// so a client that reconnects with what it held gets nothing new (over SotW, its
// named subscriptions again at the versions it holds); and the config source's
// first commit of the same content changes nothing either.
func TestRestartFromSnapshotResendsNothing(t *testing.T) {
	ctx := context.Background()
	path := tempSnapshot(t)

	// Server A serves the config; an Envoy takes and ACKs it over SotW, another
	// over delta.
	a := storeWith(t, sample("a")...)
	ccA, stopA := serve(t, a)
	sotw := conv.ADS(t, ccA, envoy("envoy-1"))
	sotw.Request(protocol.TypeCluster)
	cds := sotw.ExpectResponse(conv.Names("api", "web")).Version()
	sotw.ACK()
	sotw.Request(protocol.TypeEndpoint, "api", "web")
	eds := sotw.ExpectResponse(conv.Names("api", "web")).Version()
	sotw.ACK()
	sotw.Request(protocol.TypeListener)
	lds := sotw.ExpectResponse(conv.Names("http")).Version()
	sotw.ACK()
	sotw.Request(protocol.TypeRoute, "routes")
	rds := sotw.ExpectResponse(conv.Names("routes")).Version()
	sotw.ACK()

	delta := conv.DeltaADS(t, ccA, envoy("envoy-2"))
	delta.Subscribe(protocol.TypeCluster, "*")
	r := delta.ExpectResponse(conv.Updated("api", "web"))
	delta.ACK()
	held := map[string]string{"api": r.VersionOf("api"), "web": r.VersionOf("web")}

	// A writes its snapshot at shutdown and exits.
	pa := persist.NewPersister(a, openFile(t, path), persist.Options{Logger: quiet})
	runCtx, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, pa.Run(runCtx))
	stopA()

	// Server B starts from the snapshot alone, before its config source loads.
	b := store.New()
	pb := persist.NewPersister(b, openFile(t, path), persist.Options{Logger: quiet})
	info, err := pb.Restore(ctx)
	require.NoError(t, err)
	require.True(t, info.Restored)
	require.Zero(t, info.Mismatched)
	ccB, _ := serve(t, b)

	// S3, S6: the SotW client reconnects naming the versions it holds. Its
	// wildcard CDS and LDS are current: nothing is resent. Its named EDS and RDS
	// are answered again, at the versions it holds: the same content.
	again := conv.ADS(t, ccB, envoy("envoy-1"))
	again.Send(&discoveryv3.DiscoveryRequest{Node: envoy("envoy-1"), TypeUrl: protocol.TypeCluster, VersionInfo: cds})
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeEndpoint, VersionInfo: eds, ResourceNames: []string{"api", "web"}})
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeListener, VersionInfo: lds})
	again.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeRoute, VersionInfo: rds, ResourceNames: []string{"routes"}})
	again.ExpectResponse(conv.TypeURL(protocol.TypeEndpoint), conv.Names("api", "web"), conv.Version(eds))
	again.ACK()
	again.ExpectResponse(conv.TypeURL(protocol.TypeRoute), conv.Names("routes"), conv.Version(rds))
	again.ACK()
	again.ExpectNothing()

	// D3: the delta client names the versions it holds: nothing is resent.
	deltaAgain := conv.DeltaADS(t, ccB, envoy("envoy-2"))
	deltaAgain.InitialVersions(protocol.TypeCluster, held, "*")
	deltaAgain.ExpectNothing()

	// The config source takes over with the same content: nothing changes, so
	// nothing is pushed and nothing is written.
	res := commit(t, b, sample("a")...)
	assert.False(t, res.Changed(), "%+v", res)
	pb.ConfigLoaded()
	again.ExpectNothing()
	deltaAgain.ExpectNothing()
	wrote, err := pb.Persist(ctx)
	require.NoError(t, err)
	assert.False(t, wrote)

	// A client that held other versions (P3) gets the restored content.
	fresh := conv.ADS(t, ccB, envoy("envoy-3"))
	fresh.Send(&discoveryv3.DiscoveryRequest{Node: envoy("envoy-3"), TypeUrl: protocol.TypeCluster, VersionInfo: "from-elsewhere"})
	fresh.ExpectResponse(conv.Names("api", "web"), conv.Version(cds))
}
