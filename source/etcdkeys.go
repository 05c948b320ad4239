package source

import (
	"fmt"
	"strings"
)

// The etcd layout (docs/etcd.md), under a prefix P:
//
//	P/current                                   the generation served, decimal; absent = "0"
//	P/gen/<gen>/<scope>/<message>/<name>        one resource, JSON as in a config file
//	P/rollout/state                             the rollout running: read at each list (etcdrollout.go)
//	P/applied, P/nodes/..., P/replicas/..., P/rollout/leader/..., P/staging   not read by the source
//
// The source watches only the range [P/current, P/gen0) (EtcdWatchRange):
// it holds P/current and every P/gen/... key and nothing else of the layout
// ("gen/" sorts before "gen0"; "nodes", "replicas", "rollout" and "staging"
// after it, "applied" before "current"), so that the fleet status the
// replicas write all the time never reaches a replica's watch.
// <message> is the full name of the resource's message
// (envoy.config.cluster.v3.Cluster); <name> is everything after it and may
// hold slashes (xdstp:// names).

// typeURLPrefix is what a type URL is made of before the message's full name.
const typeURLPrefix = "type.googleapis.com/"

// EtcdCurrentKey returns the key holding the generation served under prefix.
func EtcdCurrentKey(prefix string) string { return prefix + "/current" }

// EtcdWatchRange returns the key range [key, end) the source watches: the
// current generation's key and every generation's keys, nothing else.
func EtcdWatchRange(prefix string) (key, end string) {
	return EtcdCurrentKey(prefix), prefix + "/gen0"
}

// EtcdNodesPrefix returns the prefix, with its trailing slash, of the fleet
// status every replica writes: P/nodes/<replica id>/<node id>. It sorts after
// the source's watch range (EtcdWatchRange).
func EtcdNodesPrefix(prefix string) string { return prefix + "/nodes/" }

// EtcdReplicasPrefix returns the prefix, with its trailing slash, of the
// replicas' own keys: P/replicas/<replica id>.
func EtcdReplicasPrefix(prefix string) string { return prefix + "/replicas/" }

// EtcdGenPrefix returns the prefix of every key of generation gen, with its
// trailing slash.
func EtcdGenPrefix(prefix, gen string) string { return prefix + "/gen/" + gen + "/" }

// EtcdResourceKey returns the key of a resource of generation gen.
func EtcdResourceKey(prefix, gen, scope, typeURL, name string) string {
	return EtcdGenPrefix(prefix, gen) + scope + "/" + strings.TrimPrefix(typeURL, typeURLPrefix) + "/" + name
}

// ParseEtcdResourceKey splits the key of a resource of generation gen, as
// EtcdResourceKey makes it. ok is false for a key outside the generation.
func ParseEtcdResourceKey(prefix, gen, key string) (scope, typeURL, name string, ok bool, err error) {
	rest, ok := strings.CutPrefix(key, EtcdGenPrefix(prefix, gen))
	if !ok {
		return "", "", "", false, nil
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", true, fmt.Errorf("key %s: want %s<scope>/<message full name>/<resource name>", key, EtcdGenPrefix(prefix, gen))
	}
	return parts[0], typeURLPrefix + parts[1], parts[2], true, nil
}
