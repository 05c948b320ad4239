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
	{id: "xdstp-bytes-kept", title: "names holding what a URL encoder escapes come back byte for byte, in resources and removed_resources",
		rules:   []string{"X4", "D7"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaXdstpBytesKept}},
	{id: "xdstp-spellings-apart", title: "two clients spelling one name differently are each answered in their own spelling, for the same content",
		rules:   []string{"X4", "D7"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaXdstpSpellingsApart}},
	{id: "xdstp-spelling-lifetime", title: "a spelling lasts as long as the subscription that made it; the wildcard and globs use the store's names",
		rules:   []string{"X4", "D6", "X2"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaXdstpSpellingLifetime}},
	{id: "xdstp-initial-versions-spelling", title: "removed_resources names what a reconnecting client holds as it spelled it in initial_resource_versions",
		rules:   []string{"X4", "D3"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaXdstpInitialVersionsSpelling}},
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

// Names whose context parameters are in order and hold what a URL query encoder
// escapes: a ':', a '/', a space, a key without a value.
const (
	xdstpColon   = "xdstp://auth/envoy.config.cluster.v3.Cluster/c?node.addr=10.0.0.1:8080"
	xdstpSlash   = "xdstp://auth/envoy.config.cluster.v3.Cluster/c?path=x/y"
	xdstpSpace   = "xdstp://auth/envoy.config.cluster.v3.Cluster/c?who=a b"
	xdstpBare    = "xdstp://auth/envoy.config.cluster.v3.Cluster/c?a"
	xdstpMissing = "xdstp://auth/envoy.config.cluster.v3.Cluster/missing?node.addr=10.0.0.2:8080"
)

// X4, D7: every name comes back as subscribed, byte for byte, in resources and in
// removed_resources: nothing is escaped on the way. Over SotW each resource
// carries its own name.
func deltaXdstpBytesKept(t *testing.T, s server) {
	s.commit(t, setCluster(xdstpColon), setCluster(xdstpSlash), setCluster(xdstpSpace), setCluster(xdstpBare))
	d := s.deltaADS(t, edgeNode("envoy-1"))
	d.Subscribe(cds, xdstpColon, xdstpSlash, xdstpSpace, xdstpBare, xdstpMissing)
	d.ExpectResponse(conv.Updated(xdstpColon, xdstpSlash, xdstpSpace, xdstpBare), conv.Removed(xdstpMissing))
	d.ACK()
	s.commit(t, setCluster(xdstpColon, longerTimeout()), drop(cds, xdstpSpace))
	d.ExpectResponse(conv.Updated(xdstpColon), conv.Removed(xdstpSpace))

	c := s.ads(t, edgeNode("grpc-1"))
	c.Request(cds, xdstpColon, xdstpSlash, xdstpBare)
	c.ExpectResponse(conv.Names(xdstpColon, xdstpSlash, xdstpBare))
}

// The group of the spelling scenarios: c1 stored with its parameters out of
// order, c2 and c3 in order.
const (
	groupC1     = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a=1&b=2"
	groupC1Swap = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?b=2&a=1"
	groupC2     = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c2?a=1&b=2"
	otherC3     = "xdstp://auth/envoy.config.cluster.v3.Cluster/other/c3?a=1&b=2"
	groupGlob   = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/*?b=2&a=1"
)

func commitGroup(t *testing.T, s server) {
	s.commit(t, setCluster(groupC1Swap), setCluster(groupC2), setCluster(otherC3))
}

// X4, D7: one client spells c1 out of order, another in normal form: each is
// answered in its own spelling, in updates, deletions and for a name that does
// not exist, for the same content (the two share no frame).
func deltaXdstpSpellingsApart(t *testing.T, s server) {
	missingSwap := "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c9?b=2&a=1"
	commitGroup(t, s)
	swapped := s.deltaADS(t, edgeNode("envoy-1"))
	swapped.Subscribe(cds, groupC1Swap, missingSwap)
	swapped.ExpectResponse(conv.Updated(groupC1Swap), conv.Removed(missingSwap))
	swapped.ACK()
	normal := s.deltaADS(t, edgeNode("envoy-2"))
	normal.Subscribe(cds, groupC1)
	normal.ExpectResponse(conv.Updated(groupC1), conv.NoRemoved())
	normal.ACK()

	s.commit(t, setCluster(groupC1, longerTimeout()))
	swapped.ExpectResponse(conv.Updated(groupC1Swap), conv.NoRemoved())
	normal.ExpectResponse(conv.Updated(groupC1), conv.NoRemoved())
	swapped.ACK()
	normal.ACK()

	s.commit(t, drop(cds, groupC1Swap))
	swapped.ExpectResponse(conv.Updated(), conv.Removed(groupC1Swap))
	normal.ExpectResponse(conv.Updated(), conv.Removed(groupC1))
}

// X4, D6, X2: unsubscribing the spelled name while the wildcard covers c1 sends
// it again under the store's name; a glob collection's members go under the
// store's names too.
func deltaXdstpSpellingLifetime(t *testing.T, s server) {
	commitGroup(t, s)
	d := s.deltaADS(t, edgeNode("envoy-1"))
	d.Subscribe(cds, "*", groupC1Swap)
	d.ExpectResponse(conv.Updated(groupC1Swap, groupC2, otherC3))
	d.ACK()
	d.Unsubscribe(cds, groupC1)
	d.ExpectResponse(conv.Updated(groupC1), conv.NoRemoved()) // D6: the wildcard still covers it

	g := s.deltaADS(t, edgeNode("envoy-2"))
	g.Subscribe(cds, groupGlob)
	g.ExpectResponse(conv.Updated(groupC1, groupC2), conv.NoRemoved()) // X2: members as stored
}

// X4, D3: what a reconnecting client says it holds, and no longer exists, is
// announced removed under the client's spelling, wildcard or by name.
func deltaXdstpInitialVersionsSpelling(t *testing.T, s server) {
	goneSwap := "xdstp://auth/envoy.config.cluster.v3.Cluster/group/gone?b=2&a=1"
	commitGroup(t, s)
	wild := s.deltaADS(t, edgeNode("envoy-1"))
	wild.InitialVersions(cds, map[string]string{goneSwap: "v0"}, "*")
	wild.ExpectResponse(conv.Updated(groupC1, groupC2, otherC3), conv.Removed(goneSwap))

	c2Swap := "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c2?b=2&a=1"
	first := s.deltaADS(t, edgeNode("envoy-2"))
	first.Subscribe(cds, c2Swap)
	r := first.ExpectResponse(conv.Updated(c2Swap))
	first.ACK()
	s.commit(t, drop(cds, groupC2))
	again := s.deltaADS(t, edgeNode("envoy-3"))
	again.InitialVersions(cds, map[string]string{c2Swap: r.VersionOf(c2Swap)}, c2Swap)
	again.ExpectResponse(conv.Updated(), conv.Removed(c2Swap)) // D3, D7
}
