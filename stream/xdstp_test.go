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
	r := d.ExpectResponse(conv.Updated(xdstpC1))
	d.ACK()
	again := conv.DeltaADS(t, e.cc, node("envoy-3", scope))
	again.InitialVersions(cds, map[string]string{xdstpC1Swap: r.VersionOf(xdstpC1)}, xdstpC1Swap)
	again.ExpectNothing() // D3: it holds the current version under the other spelling
}
