package main

import (
	"context"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/etcdtest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/source"
)

// The failover tests run leanxds binaries on one etcd prefix (--source
// etcd://): replicas over a shared source of truth. What etcd itself going
// away does is proven where it happens: one member killed changes nothing,
// all of them stopped leave the last content served and changes flow again
// when they return (source TestEtcdMembersDown); a replica started while etcd
// is down serves its snapshot (TestBinaryServeEtcd); a concurrent apply loses
// cleanly (source TestApplyEtcdConcurrentApplyLoses,
// TestApplyEtcdConflictWhileStaging).

// The edge example's resources, as an Envoy of scope "edge" subscribes to
// them: wildcard CDS and LDS, named EDS, RDS and SDS.
var (
	edgeClusters  = []string{"api", "payments", "web"}
	edgeListeners = []string{"internal", "public"}
	edgeRoutes    = []string{"internal-routes", "public-routes"}
	edgeSecrets   = []string{"upstream-ca"}
)

// startReplicas starts n binaries serving the etcd prefix, which holds the
// edge example.
func startReplicas(t *testing.T, n int) (prefix string, reps []*proc, put func(key, value string)) {
	t.Helper()
	cli := etcdtest.Client(t)
	prefix = etcdtest.Prefix(t, cli)
	putExample(t, cli, prefix, "1", "edge")
	addr := "etcd://" + strings.Join(etcdtest.Endpoints(t), ",") + prefix
	for range n {
		reps = append(reps, startServe(t, t.TempDir(), nil, "--source", addr, "--drain-timeout", "2s"))
	}
	return prefix, reps, func(key, value string) {
		t.Helper()
		_, err := cli.Put(context.Background(), key, value)
		require.NoError(t, err)
	}
}

// sotwSession is what a SotW client holds: per type, the version it ACKed.
type sotwSession struct {
	c        *conv.SotW
	versions map[string]string
	bytes    int
}

// connectSotW subscribes as an Envoy does, ACKing each response.
func connectSotW(t *testing.T, addr, id string) *sotwSession {
	t.Helper()
	s := &sotwSession{versions: map[string]string{}}
	s.c = conv.ADS(t, dialInsecure(t, addr), node(id, "edge"), conv.WithTimeout(10*time.Second))
	for _, sub := range []struct {
		typeURL string
		names   []string
		want    []string
	}{
		{protocol.TypeCluster, nil, edgeClusters},
		{protocol.TypeEndpoint, edgeClusters, edgeClusters},
		{protocol.TypeListener, nil, edgeListeners},
		{protocol.TypeRoute, edgeRoutes, edgeRoutes},
		{protocol.TypeSecret, edgeSecrets, edgeSecrets},
	} {
		r := s.c.Request(sub.typeURL, sub.names...).ExpectResponse(conv.TypeURL(sub.typeURL), conv.Names(sub.want...))
		s.c.ACK()
		s.versions[sub.typeURL] = r.Version()
		s.bytes += proto.Size(r.DiscoveryResponse)
	}
	return s
}

// deltaSession is what a delta client holds: per type, every resource's
// version.
type deltaSession struct {
	c        *conv.Delta
	versions map[string]map[string]string
	bytes    int
}

func connectDelta(t *testing.T, addr, id string) *deltaSession {
	t.Helper()
	s := &deltaSession{versions: map[string]map[string]string{}}
	s.c = conv.DeltaADS(t, dialInsecure(t, addr), node(id, "edge"), conv.WithTimeout(10*time.Second))
	for _, sub := range []struct {
		typeURL string
		names   []string
		want    []string
	}{
		{protocol.TypeCluster, []string{"*"}, edgeClusters},
		{protocol.TypeEndpoint, edgeClusters, edgeClusters},
		{protocol.TypeListener, []string{"*"}, edgeListeners},
		{protocol.TypeRoute, edgeRoutes, edgeRoutes},
		{protocol.TypeSecret, edgeSecrets, edgeSecrets},
	} {
		r := s.c.Subscribe(sub.typeURL, sub.names...).ExpectResponse(conv.DTypeURL(sub.typeURL), conv.Updated(sub.want...))
		s.c.ACK()
		s.versions[sub.typeURL] = map[string]string{}
		for _, name := range sub.want {
			s.versions[sub.typeURL][name] = r.VersionOf(name)
		}
		s.bytes += proto.Size(r.DeltaDiscoveryResponse)
	}
	return s
}

// Three replicas on one etcd prefix serve the same version strings for the
// same content, SotW and delta, every type: versions are digests of content.
// A replica killed with SIGKILL loses its clients to the others, which send
// them only what the rules require: a delta client resuming with
// initial_resource_versions is sent no cluster, listener or secret (D3) and
// its endpoints and routes again at the same versions (D9); a SotW client
// resuming with the versions it holds is sent no cluster nor listener (S3:
// wildcard, full state) and its named endpoints, routes and secret again at
// the same versions (S6). A change written to etcd then reaches the moved
// clients: the first response of a type after the resume is that change's.
func TestBinaryReplicasFailover(t *testing.T) {
	prefix, reps, put := startReplicas(t, 3)

	var sotw []*sotwSession
	var delta []*deltaSession
	for i, p := range reps {
		sotw = append(sotw, connectSotW(t, p.xds, "sotw-"+string(rune('a'+i))))
		delta = append(delta, connectDelta(t, p.xds, "delta-"+string(rune('a'+i))))
	}
	for i := 1; i < len(reps); i++ {
		assert.Equal(t, sotw[0].versions, sotw[i].versions, "replica %d: the same SotW versions", i)
		assert.Equal(t, delta[0].versions, delta[i].versions, "replica %d: the same resource versions", i)
	}

	// Replica 0 dies: no drain, no goodbye.
	require.NoError(t, reps[0].cmd.Process.Kill())
	<-reps[0].exited
	sotw[0].c.ExpectError(codes.Unavailable) // the connection is gone
	delta[0].c.ExpectError(codes.Unavailable)

	// The SotW client resumes on replica 1 with what it holds.
	held := sotw[0]
	moved := conv.ADS(t, dialInsecure(t, reps[1].xds), node("sotw-a", "edge"), conv.WithTimeout(10*time.Second))
	n := node("sotw-a", "edge")
	moved.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: protocol.TypeCluster, VersionInfo: held.versions[protocol.TypeCluster]})
	moved.Send(&discoveryv3.DiscoveryRequest{TypeUrl: protocol.TypeListener, VersionInfo: held.versions[protocol.TypeListener]})
	resent := 0
	for _, sub := range []struct {
		typeURL string
		names   []string
	}{{protocol.TypeEndpoint, edgeClusters}, {protocol.TypeRoute, edgeRoutes}, {protocol.TypeSecret, edgeSecrets}} {
		moved.Send(&discoveryv3.DiscoveryRequest{TypeUrl: sub.typeURL, ResourceNames: sub.names, VersionInfo: held.versions[sub.typeURL]})
		// S6: a named subscription is answered in full on a new stream, at
		// the version the client holds: no cluster or listener came first.
		r := moved.ExpectResponse(conv.TypeURL(sub.typeURL), conv.Names(sub.names...), conv.Version(held.versions[sub.typeURL]))
		moved.ACK()
		resent += proto.Size(r.DiscoveryResponse)
	}

	// The delta client resumes on replica 2 with every version it holds.
	dheld := delta[0]
	dmoved := conv.DeltaADS(t, dialInsecure(t, reps[2].xds), node("delta-a", "edge"), conv.WithTimeout(10*time.Second))
	dmoved.InitialVersions(protocol.TypeCluster, dheld.versions[protocol.TypeCluster], "*")
	dmoved.InitialVersions(protocol.TypeListener, dheld.versions[protocol.TypeListener], "*")
	dmoved.InitialVersions(protocol.TypeSecret, dheld.versions[protocol.TypeSecret], edgeSecrets...)
	dresent, dresources := 0, 0
	for _, sub := range []struct {
		typeURL string
		names   []string
	}{{protocol.TypeEndpoint, edgeClusters}, {protocol.TypeRoute, edgeRoutes}} {
		dmoved.InitialVersions(sub.typeURL, dheld.versions[sub.typeURL], sub.names...)
		// D9: endpoints and routes used by a cluster (listener) are sent
		// again at the versions held; clusters, listeners and the secret
		// are compared by version (D3) and not sent: none came first.
		matches := []conv.DeltaMatch{conv.DTypeURL(sub.typeURL), conv.Updated(sub.names...), conv.NoRemoved()}
		for name, v := range dheld.versions[sub.typeURL] {
			matches = append(matches, conv.VersionOf(name, v))
		}
		r := dmoved.ExpectResponse(matches...)
		dmoved.ACK()
		dresent += proto.Size(r.DeltaDiscoveryResponse)
		dresources += len(r.GetResources())
	}

	// A change through etcd: the next response of each moved client is the
	// new cluster, so nothing else was sent before it.
	put(source.EtcdResourceKey(prefix, "1", source.DefaultScope, protocol.TypeCluster, "extra"),
		`{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "extra", "type": "STATIC", "connect_timeout": "1s"}`)
	cds := moved.ExpectResponse(conv.TypeURL(protocol.TypeCluster), conv.Names(append([]string{"extra"}, edgeClusters...)...))
	assert.NotEqual(t, held.versions[protocol.TypeCluster], cds.Version())
	moved.ACK()
	dmoved.ExpectResponse(conv.DTypeURL(protocol.TypeCluster), conv.Updated("extra"), conv.NoRemoved())
	dmoved.ACK()

	// Each moved client is now served by the replica it moved to.
	for _, m := range []struct {
		rep  *proc
		node string
	}{{reps[1], "sotw-a"}, {reps[2], "delta-a"}} {
		var ids []string
		for _, c := range getClients(t, m.rep.admin, "/debug/clients") {
			ids = append(ids, c.NodeID)
		}
		assert.Contains(t, ids, m.node)
	}

	t.Logf("SotW: first connect %d bytes in 5 responses; resumed on another replica: %d bytes (EDS, RDS, SDS named: S6), CDS and LDS nothing (S3)", held.bytes, resent)
	t.Logf("delta: first connect %d bytes; resumed on another replica: %d bytes, %d resources (EDS, RDS: D9), CDS, LDS, SDS nothing (D3)", dheld.bytes, dresent, dresources)
	assert.Less(t, resent, held.bytes)
	assert.Less(t, dresent, dheld.bytes)
}
