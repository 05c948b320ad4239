package conformance_test

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
)

// Make before break is a transition, not a config (R18), and whatever it holds
// back ends on something the server sees (R19).
var transitionScenarios = []scenario{
	{id: "dangling-deletion", title: "a cluster deleted while a route still names it goes at once, for clients that had it too",
		rules:   []string{"R18"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwDanglingDeletion, scriptedDelta: deltaDanglingDeletion}},
	{id: "delta-resume-owed", title: "a delta client resuming with an updated cluster is answered its endpoints again, unless they changed after it",
		rules:   []string{"D9", "R16"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaResumeOwed}},
	{id: "route-not-held", title: "a route to a cluster whose endpoints come from elsewhere waits at most for the clusters' ACK",
		rules:   []string{"R19"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwRouteNotHeld, scriptedDelta: deltaRouteNotHeld}},
}

// R18: route r names a and b; the config deletes a and leaves r as it is. That
// is no transition the client is in: a goes at once.
func sotwDanglingDeletion(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), setRoute("r", "a", "b"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a", "b"))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()

	s.commit(t, drop(cds, "a"))
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("b"))
}

func deltaDanglingDeletion(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setCluster("b"), setRoute("r", "a", "b"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(rds, "r")
	c.ExpectResponse(conv.Updated("r"))
	c.ACK()

	s.commit(t, drop(cds, "a"))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated(), conv.Removed("a")) // D7
}

// fromFile makes a cluster's endpoints come from a file on the client, not
// from this server.
func fromFile(c *clusterv3.Cluster) {
	c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/etc/envoy/eds.yaml"}}
}

// R15, R19: a route to new cluster b waits while b may warm; b's endpoints do
// not come over this stream, so the client ACKs the clusters without asking for
// them, and the route goes out then.
func sotwRouteNotHeld(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setRoute("r", "a"))
	c := s.ads(t, edgeNode("envoy-1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(eds, "a")
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()

	s.commit(t, setCluster("b", fromFile), setRoute("r", "a", "b"))
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("a", "b"))
	c.ExpectNothing() // b may still warm
	c.ACK()
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ACK()
	s.commit(t, setRoute("r", "b"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r")) // and later routes are not held
}

func deltaRouteNotHeld(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setRoute("r", "a"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(rds, "r")
	c.ExpectResponse(conv.Updated("r"))
	c.ACK()

	s.commit(t, setCluster("b", fromFile), setRoute("r", "a", "b"))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("b"))
	c.ExpectNothing() // b may still warm
	c.ACK()
	c.ExpectResponse(conv.DTypeURL(rds), conv.Updated("r"))
	c.ACK()
	s.commit(t, setRoute("r", "b"))
	c.ExpectResponse(conv.DTypeURL(rds), conv.Updated("r"))
}

// D9, R16: the stream breaks after the client applied updated cluster a but
// before the endpoints owed to it arrived. Resuming, it names the endpoints it
// holds, at their current version: they are sent again all the same. Endpoints
// no cluster uses are compared by version (D3).
func deltaResumeOwed(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setEndpoints("a", "10.0.0.1:80"), setEndpoints("spare", "10.0.0.9:80"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "a", "spare")
	e := c.ExpectResponse(conv.Updated("a", "spare"))
	c.ACK()

	s.commit(t, setCluster("a", xdstest.WithConnectTimeout(3*time.Second)))
	cr := c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("a"))
	// The client applies the cluster; the stream breaks before the endpoints come.
	again := s.deltaADS(t, edgeNode("envoy-1"))
	again.InitialVersions(cds, map[string]string{"a": cr.VersionOf("a")}, "*")
	again.ExpectNothing() // D3: the clusters are current
	again.InitialVersions(eds, map[string]string{"a": e.VersionOf("a"), "spare": e.VersionOf("spare")}, "a", "spare")
	again.ExpectResponse(conv.DTypeURL(eds), conv.Updated("a"), conv.NoRemoved()) // D9; spare is current (D3)
}
