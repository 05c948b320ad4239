package conformance_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/leanxds/leanxds/internal/conv"
)

// xdstpScenarios prove the xdstp naming rules (cncf/xds TP1) with the scripted
// client, over SotW and delta (X3). The grpc-go client proves them too, in the
// grpc-xdstp scenario.
var xdstpScenarios = []scenario{
	{id: "xdstp-params-order", title: "an xdstp name is the same resource whatever the order of its context parameters",
		rules:   []string{"X1", "X3"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwXdstpParamsOrder, scriptedDelta: deltaXdstpParamsOrder}},
	{id: "xdstp-glob", title: "a glob collection is answered with each member as its own resource, and follows changes",
		rules:   []string{"X2", "X3"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwXdstpGlob, scriptedDelta: deltaXdstpGlob}},
	{id: "xdstp-client-spelling", title: "a delta client is answered with its own spelling of xdstp names, in updates and removals",
		rules:   []string{"X4", "X1", "D3", "D7"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaXdstpClientSpelling}},
}

const (
	// xdstpBA and xdstpAB are one cluster, its context parameters in two orders.
	xdstpBA = "xdstp://auth/envoy.config.cluster.v3.Cluster/c1?b=2&a=1"
	xdstpAB = "xdstp://auth/envoy.config.cluster.v3.Cluster/c1?a=1&b=2"
	// xdstpGroup is a glob collection; its members are xdstpGroup without the
	// "*" and with an id.
	xdstpGroup = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/*"
)

func xdstpMember(id string) string { return strings.TrimSuffix(xdstpGroup, "*") + id }

// X1, X3: the cluster is committed as ...?b=2&a=1 and asked for as ...?a=1&b=2,
// over SotW. The answer names it in either spelling (a client normalises too),
// and later changes follow.
func sotwXdstpParamsOrder(t *testing.T, s server) {
	s.commit(t, setCluster(xdstpBA), setCluster("plain"))
	c := s.ads(t, edgeNode("grpc-1"))
	c.Request(cds, xdstpAB)
	c.ExpectResponse(sameXdstpNames(xdstpAB))
	c.ACK()
	s.commit(t, setCluster(xdstpBA, longerTimeout()))
	c.ExpectResponse(sameXdstpNames(xdstpAB))
}

// X1, X3: the same over delta; a reconnecting client presenting the resource under
// the other spelling, at its current version, gets nothing (D3).
func deltaXdstpParamsOrder(t *testing.T, s server) {
	s.commit(t, setCluster(xdstpBA), setCluster("plain"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, xdstpAB)
	r := c.ExpectResponse(sameXdstpUpdated(xdstpAB), conv.NoRemoved())
	c.ACK()
	var version string
	for _, res := range r.GetResources() {
		version = res.GetVersion()
	}
	again := s.deltaADS(t, edgeNode("envoy-2"))
	again.InitialVersions(cds, map[string]string{xdstpBA: version}, xdstpBA)
	again.ExpectNothing()
}

// X4, X1, D7, D3: the client spells its names otherwise than the store holds them
// (parameters out of order) and with characters a URL encoder escapes (':', '/',
// a space, a key without a value). Every name it is sent, updated or removed, is
// compared byte for byte with its own spelling: in the first answer, for a
// deletion, and, after it reconnects, for what it says it holds.
func deltaXdstpClientSpelling(t *testing.T, s server) {
	const (
		// c2 as stored, its parameters in order, and as the client spells it.
		c2Stored  = "xdstp://auth/envoy.config.cluster.v3.Cluster/c2?a&node.addr=10.0.0.1:8080&path=x/y&who=a b"
		c2Spelled = "xdstp://auth/envoy.config.cluster.v3.Cluster/c2?who=a b&path=x/y&node.addr=10.0.0.1:8080&a"
		missing   = "xdstp://auth/envoy.config.cluster.v3.Cluster/c9?z=1&node.addr=10.0.0.1:8080"
	)
	s.commit(t, setCluster(xdstpAB), setCluster(c2Stored), setCluster("plain"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, xdstpBA, c2Spelled, missing)
	r := c.ExpectResponse(conv.Updated(xdstpBA, c2Spelled), conv.Removed(missing)) // X4, D7
	c.ACK()
	s.commit(t, drop(cds, xdstpAB))
	c.ExpectResponse(conv.Updated(), conv.Removed(xdstpBA)) // X4, D7: a deletion

	// D3: a reconnecting client holds c2 at its current version and c1, deleted
	// since, under its own spellings; it subscribes to the wildcard.
	again := s.deltaADS(t, edgeNode("envoy-2"))
	again.InitialVersions(cds, map[string]string{c2Spelled: r.VersionOf(c2Spelled), xdstpBA: r.VersionOf(xdstpBA)}, "*")
	again.ExpectResponse(conv.Updated("plain"), conv.Removed(xdstpBA))
}

// X2, X3: subscribing to group/* gets group/a and group/b, each as a resource of
// its own, and not other/c; then a new member arrives and one is deleted. Over
// SotW the CDS response is the whole collection each time (S1).
func sotwXdstpGlob(t *testing.T, s server) {
	s.commit(t, setCluster(xdstpMember("a")), setCluster(xdstpMember("b")),
		setCluster("xdstp://auth/envoy.config.cluster.v3.Cluster/other/c"))
	c := s.ads(t, edgeNode("grpc-1"))
	c.Request(cds, xdstpGroup)
	c.ExpectResponse(sameXdstpNames(xdstpMember("a"), xdstpMember("b")))
	c.ACK()
	s.commit(t, setCluster(xdstpMember("d")), drop(cds, xdstpMember("a")))
	c.ExpectResponse(sameXdstpNames(xdstpMember("b"), xdstpMember("d")))
}

// X2, X3: the same over delta: members come as updates, the deleted one in
// removed_resources.
func deltaXdstpGlob(t *testing.T, s server) {
	s.commit(t, setCluster(xdstpMember("a")), setCluster(xdstpMember("b")),
		setCluster("xdstp://auth/envoy.config.cluster.v3.Cluster/other/c"))
	c := s.deltaADS(t, edgeNode("envoy-1"))
	c.Subscribe(cds, xdstpGroup)
	c.ExpectResponse(sameXdstpUpdated(xdstpMember("a"), xdstpMember("b")), conv.NoRemoved())
	c.ACK()
	s.commit(t, setCluster(xdstpMember("d")), drop(cds, xdstpMember("a")))
	c.ExpectResponse(sameXdstpUpdated(xdstpMember("d")), sameXdstpRemoved(xdstpMember("a")))
}

// normalizeName sorts the context parameters of an xdstp name, as TP1 asks every
// client and server to before comparing names; other names are returned as they
// are. It is written here, not taken from leanxds, so that the check is
// independent of the code it checks.
func normalizeName(name string) string {
	if !strings.HasPrefix(name, "xdstp://") {
		return name
	}
	base, query, ok := strings.Cut(name, "?")
	if !ok {
		return name
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return name
	}
	if len(params) == 0 {
		return base
	}
	return base + "?" + params.Encode() // Encode sorts by key
}

func normalizeAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = normalizeName(n)
	}
	slices.Sort(out)
	return out
}

func sameNormalized(what string, got, want []string) error {
	g, w := normalizeAll(got), normalizeAll(want)
	if !slices.Equal(g, w) {
		return fmt.Errorf("%s (normalized): got %v, want %v", what, g, w)
	}
	return nil
}

// sameXdstpNames matches a SotW response carrying exactly names, compared
// normalized (X1).
func sameXdstpNames(names ...string) conv.Match {
	return conv.Check(func(r *conv.Response) error { return sameNormalized("names", r.Names(), names) })
}

// sameXdstpUpdated matches a delta response updating exactly names, compared
// normalized.
func sameXdstpUpdated(names ...string) conv.DeltaMatch {
	return conv.DCheck(func(r *conv.DeltaResponse) error { return sameNormalized("updated", r.Updated(), names) })
}

// sameXdstpRemoved matches a delta response removing exactly names, compared
// normalized.
func sameXdstpRemoved(names ...string) conv.DeltaMatch {
	return conv.DCheck(func(r *conv.DeltaResponse) error { return sameNormalized("removed", r.Removed(), names) })
}
