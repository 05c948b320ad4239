package machine_test

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/protocol"
)

const (
	cds = protocol.TypeCluster
	eds = protocol.TypeEndpoint
	lds = protocol.TypeListener
	rds = protocol.TypeRoute
)

// scope is the scope every machine of these tests serves, to edge.
const scope = "edge"

func edgeNode() *corev3.Node { return &corev3.Node{Id: "envoy-1", Cluster: scope} }
