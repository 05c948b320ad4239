package stream

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// DefaultScope is the scope of nodes whose own scope holds nothing, unless
// Options.NoDefaultScope turns that fallback off.
const DefaultScope = "default"

// ScopeFunc maps a node to the scope whose resources it is served.
type ScopeFunc func(*corev3.Node) string

// ScopeByCluster puts a node in the scope named by its node.cluster (the default):
// every Envoy of one service cluster shares a configuration.
func ScopeByCluster(n *corev3.Node) string { return n.GetCluster() }

// ScopeByNodeID gives every node its own scope, named by its node id.
func ScopeByNodeID(n *corev3.Node) string { return n.GetId() }

// ScopeByMetadata puts a node in the scope named by the string value of key in its
// metadata ("" when it has none).
func ScopeByMetadata(key string) ScopeFunc {
	return func(n *corev3.Node) string {
		return n.GetMetadata().GetFields()[key].GetStringValue()
	}
}
