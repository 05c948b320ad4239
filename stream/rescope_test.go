package stream_test

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// A node's scope is resolved against the view it is served, not the store's
// newest: a Router serving a node a view from before its scope existed (a
// staged change that creates the scope, not yet at the node's stage) keeps it
// on the default scope, in a stream and in a Fetch. Once the view it is
// served holds its scope and its scope is woken, the stream ends with
// Unavailable, and the node reconnects to its scope.
func TestScopeResolvedAgainstTheViewServed(t *testing.T) {
	r := &viewRouter{}
	e := newEnv(t, func(o *stream.Options) { o.Router = r })
	e.commit(t, store.Set(stream.DefaultScope, xdstest.Cluster("d")))
	before := e.st.View()
	e.commit(t, store.Set("fresh", xdstest.Cluster("f")))
	n := node("n", "fresh")
	r.serve("n", &before)

	fetch := func() string {
		t.Helper()
		resp := new(discoveryv3.DiscoveryResponse)
		require.NoError(t, e.cc.Invoke(t.Context(), "/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters",
			&discoveryv3.DiscoveryRequest{Node: n}, resp))
		require.Len(t, resp.GetResources(), 1)
		var c clusterv3.Cluster
		require.NoError(t, resp.GetResources()[0].UnmarshalTo(&c))
		return c.GetName()
	}
	require.Equal(t, "d", fetch(), "served the view before the scope: the default scope")
	c := conv.ADS(t, e.cc, n)
	c.Request(cds).ExpectResponse(conv.Names("d"))
	c.ACK()
	e.srv.Wake("fresh")
	c.ExpectNothing() // still served the view without its scope

	r.serve("n", nil) // its stage is reached
	e.srv.Wake("fresh")
	err := c.ExpectError(codes.Unavailable)
	require.ErrorContains(t, err, `now "fresh"`)
	again := conv.ADS(t, e.cc, n)
	again.Request(cds).ExpectResponse(conv.Names("f"))
	again.ACK()
	require.Equal(t, "f", fetch())
}
