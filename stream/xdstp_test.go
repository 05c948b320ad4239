package stream_test

import (
	"testing"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
)

const (
	xdstpC1     = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?a=1&b=2"
	xdstpC1Swap = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c1?b=2&a=1"
	xdstpC2     = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c2?a=1&b=2"
	xdstpOther  = "xdstp://auth/envoy.config.cluster.v3.Cluster/other/c3?a=1&b=2"
	xdstpGlob   = "xdstp://auth/envoy.config.cluster.v3.Cluster/group/*?b=2&a=1"
)

func xdstpEnv(t *testing.T) *env {
	e := newEnv(t)
	// The resource is committed with its parameters in one order and asked for in
	// the other (X1).
	e.commit(t, store.Set(scope, xdstest.Cluster(xdstpC1Swap)), store.Set(scope, xdstest.Cluster(xdstpC2)),
		store.Set(scope, xdstest.Cluster(xdstpOther)))
	return e
}

// X1, X3: xdstp names are normalized before lookup, over SotW.
func TestX1X3SotWNormalizedNames(t *testing.T) {
	e := xdstpEnv(t)
	c := conv.ADS(t, e.cc, edge)
	c.Request(cds, xdstpC1)
	c.ExpectResponse(conv.Names(xdstpC1Swap)) // the resource's own name, as committed
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster(xdstpC1Swap, xdstest.WithConnectTimeout(3e9))))
	c.ExpectResponse(conv.Names(xdstpC1Swap))
}

// X2, X3: a glob collection is answered with its members, one by one, over SotW
// and over delta, and follows later changes.
func TestX2X3GlobCollections(t *testing.T) {
	e := xdstpEnv(t)
	s := conv.ADS(t, e.cc, edge)
	s.Request(cds, xdstpGlob)
	s.ExpectResponse(conv.Names(xdstpC1Swap, xdstpC2))
	s.ACK()

	d := conv.DeltaADS(t, e.cc, node("envoy-2", scope))
	d.Subscribe(cds, xdstpGlob)
	d.ExpectResponse(conv.Updated(xdstpC1, xdstpC2), conv.NoRemoved())
	d.ACK()

	c3 := "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c3?a=1&b=2"
	e.commit(t, store.Set(scope, xdstest.Cluster(c3)), store.Delete(scope, cds, xdstpC2))
	s.ExpectResponse(conv.Names(xdstpC1Swap, c3)) // S1: full state of the collection
	d.ExpectResponse(conv.Updated(c3), conv.Removed(xdstpC2))
}

// X1, X3: delta subscriptions and initial versions use normalized names too.
func TestX1X3DeltaNormalizedNames(t *testing.T) {
	e := xdstpEnv(t)
	d := conv.DeltaADS(t, e.cc, edge)
	d.Subscribe(cds, xdstpC1Swap)
	r := d.ExpectResponse(conv.Updated(xdstpC1Swap)) // X4: as the client spelled it
	d.ACK()
	again := conv.DeltaADS(t, e.cc, node("envoy-3", scope))
	again.InitialVersions(cds, map[string]string{xdstpC1: r.VersionOf(xdstpC1Swap)}, xdstpC1)
	again.ExpectNothing() // D3: it holds the current version under the other spelling
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

// X4, D7: a delta client is answered with the names it subscribed with, byte for
// byte, in resources and in removed_resources: nothing is escaped on the way.
func TestX4DeltaNamesKeepTheirBytes(t *testing.T) {
	e := newEnv(t)
	e.commit(t, store.Set(scope, xdstest.Cluster(xdstpColon)), store.Set(scope, xdstest.Cluster(xdstpSlash)),
		store.Set(scope, xdstest.Cluster(xdstpSpace)), store.Set(scope, xdstest.Cluster(xdstpBare)))
	d := conv.DeltaADS(t, e.cc, edge)
	d.Subscribe(cds, xdstpColon, xdstpSlash, xdstpSpace, xdstpBare, xdstpMissing)
	d.ExpectResponse(conv.Updated(xdstpColon, xdstpSlash, xdstpSpace, xdstpBare), conv.Removed(xdstpMissing))
	d.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster(xdstpColon, xdstest.WithConnectTimeout(3e9))), store.Delete(scope, cds, xdstpSpace))
	d.ExpectResponse(conv.Updated(xdstpColon), conv.Removed(xdstpSpace))

	// SotW is unchanged: each resource carries its own name.
	s := conv.ADS(t, e.cc, node("grpc-1", scope))
	s.Request(cds, xdstpColon, xdstpSlash, xdstpBare)
	s.ExpectResponse(conv.Names(xdstpColon, xdstpSlash, xdstpBare))
}

// X4, D7: a client that spells a name with its context parameters out of order is
// answered under its spelling, in updates, deletions and for a name that does
// not exist, while another stream spelling it in normal form gets the normal form
// for the same content: the two do not share a frame.
func TestX4DeltaOutOfOrderSpelling(t *testing.T) {
	missingSwap := "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c9?b=2&a=1"
	e := xdstpEnv(t)
	swapped := conv.DeltaADS(t, e.cc, edge)
	swapped.Subscribe(cds, xdstpC1Swap, missingSwap)
	swapped.ExpectResponse(conv.Updated(xdstpC1Swap), conv.Removed(missingSwap))
	swapped.ACK()
	normal := conv.DeltaADS(t, e.cc, node("envoy-2", scope))
	normal.Subscribe(cds, xdstpC1)
	normal.ExpectResponse(conv.Updated(xdstpC1), conv.NoRemoved())
	normal.ACK()

	e.commit(t, store.Set(scope, xdstest.Cluster(xdstpC1, xdstest.WithConnectTimeout(3e9))))
	swapped.ExpectResponse(conv.Updated(xdstpC1Swap), conv.NoRemoved())
	normal.ExpectResponse(conv.Updated(xdstpC1), conv.NoRemoved())
	swapped.ACK()
	normal.ACK()

	e.commit(t, store.Delete(scope, cds, xdstpC1Swap))
	swapped.ExpectResponse(conv.Updated(), conv.Removed(xdstpC1Swap))
	normal.ExpectResponse(conv.Updated(), conv.Removed(xdstpC1))
}

// X4, D6, X2: a spelling lasts as long as the subscription that made it; what the
// wildcard or a glob collection covers goes under the store's name.
func TestX4SpellingEndsWithItsSubscription(t *testing.T) {
	e := xdstpEnv(t)
	d := conv.DeltaADS(t, e.cc, edge)
	d.Subscribe(cds, "*", xdstpC1Swap)
	d.ExpectResponse(conv.Updated(xdstpC1Swap, xdstpC2, xdstpOther))
	d.ACK()
	d.Unsubscribe(cds, xdstpC1)
	d.ExpectResponse(conv.Updated(xdstpC1), conv.NoRemoved()) // D6: the wildcard still covers it

	g := conv.DeltaADS(t, e.cc, node("envoy-2", scope))
	g.Subscribe(cds, xdstpGlob)
	g.ExpectResponse(conv.Updated(xdstpC1, xdstpC2), conv.NoRemoved()) // X2: members as stored
}

// X4, D3: removed_resources names what a reconnecting client says it holds as
// the client spelled it in initial_resource_versions.
func TestX4InitialVersionsSpelling(t *testing.T) {
	goneSwap := "xdstp://auth/envoy.config.cluster.v3.Cluster/group/gone?b=2&a=1"
	e := xdstpEnv(t)
	wild := conv.DeltaADS(t, e.cc, edge)
	wild.InitialVersions(cds, map[string]string{goneSwap: "v0"}, "*")
	wild.ExpectResponse(conv.Updated(xdstpC1, xdstpC2, xdstpOther), conv.Removed(goneSwap))

	c2Swap := "xdstp://auth/envoy.config.cluster.v3.Cluster/group/c2?b=2&a=1"
	first := conv.DeltaADS(t, e.cc, node("envoy-2", scope))
	first.Subscribe(cds, c2Swap)
	r := first.ExpectResponse(conv.Updated(c2Swap))
	first.ACK()
	e.commit(t, store.Delete(scope, cds, xdstpC2))
	again := conv.DeltaADS(t, e.cc, node("envoy-3", scope))
	again.InitialVersions(cds, map[string]string{c2Swap: r.VersionOf(c2Swap)}, c2Swap)
	again.ExpectResponse(conv.Updated(), conv.Removed(c2Swap)) // D3, D7
}
