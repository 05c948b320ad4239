package conformance_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
)

// wireScenarios are written as exact conversations of the scripted ADS client
// (internal/conv): what it sends, and what the server must answer, to the nonce,
// version and name; or that it must stay silent. Each runs over gRPC and in
// memory, where silence is exact. A scenario with both a SotW and a delta
// conversation proves the rule in both variants.
var wireScenarios = []scenario{
	{id: "nonces-and-versions", title: "every response has a nonce of its own; each type keeps its own version; delta versions are content hashes",
		rules:       []string{"R1", "R3"},
		clientRules: map[client][]string{scriptedDelta: {"D1", "D8"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwNoncesAndVersions, scriptedDelta: deltaNoncesAndVersions}},
	{id: "node-on-first-request", title: "the Node is needed on the first request only; without it the stream ends with InvalidArgument",
		rules:   []string{"R2"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwNodeOnFirstRequest, scriptedDelta: deltaNodeOnFirstRequest}},
	{id: "nack-no-resend", title: "error_detail makes a NACK whatever its code; the server records it and sends nothing until the next change",
		rules:       []string{"R4", "R6", "P1"},
		clientRules: map[client][]string{scriptedSotW: {"R5"}, scriptedDelta: {"D1"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwNACK, scriptedDelta: deltaNACK}},
	{id: "stale-nonce", title: "a SotW request with a stale nonce is ignored; a delta subscription is honoured whatever its nonce",
		clientRules: map[client][]string{scriptedSotW: {"R7"}, scriptedDelta: {"D2"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwStaleNonce, scriptedDelta: deltaStaleNonce}},
	{id: "only-requested", title: "the resources asked for are sent, and no other",
		rules:   []string{"R8"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwOnlyRequested, scriptedDelta: deltaOnlyRequested}},
	{id: "subscription-grows", title: "a name added to the subscription is sent, even when the client had it before",
		rules:       []string{"R9"},
		clientRules: map[client][]string{scriptedDelta: {"D5"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwSubscriptionGrows, scriptedDelta: deltaSubscribeAlwaysAnswered}},
	{id: "wildcard-beside-names", title: "\"*\" beside explicit names subscribes to everything",
		rules:       []string{"R10"},
		clientRules: map[client][]string{scriptedDelta: {"D4", "D6"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwWildcardBesideNames, scriptedDelta: deltaWildcardBesideNames}},
	{id: "legacy-wildcard", title: "a first request naming nothing is a wildcard; after names, an empty list means none",
		clientRules: map[client][]string{scriptedSotW: {"R11"}, scriptedDelta: {"D4"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwLegacyWildcard, scriptedDelta: deltaLegacyWildcard}},
	{id: "explicit-lds-cds", title: "LDS and CDS subscribed by name get the named resources only, never a wildcard",
		rules:   []string{"R12"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwExplicitLDSCDS, scriptedDelta: deltaExplicitLDSCDS}},
	{id: "no-duplicate-names", title: "a resource named twice in a subscription appears once in the response",
		rules:   []string{"R13"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwNoDuplicates, scriptedDelta: deltaNoDuplicates}},
	{id: "missing-then-created", title: "a requested resource that does not exist is sent when it appears",
		rules:       []string{"R14"},
		clientRules: map[client][]string{scriptedDelta: {"D7"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwMissingThenCreated, scriptedDelta: deltaMissingThenCreated}},
	{id: "push-order", title: "one commit touching every type is pushed CDS, EDS, LDS, RDS; a route to a new cluster waits for its endpoints",
		rules:   []string{"R15"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwPushOrder, scriptedDelta: deltaPushOrder}},
	{id: "make-before-break", title: "a deleted cluster a route still uses, and its endpoints, are removed only after the route update is ACKed",
		rules:   []string{"R15"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwMakeBeforeBreak, scriptedDelta: deltaMakeBeforeBreak}},
	{id: "new-cluster-before-route", title: "a new cluster's endpoints reach an Envoy-like client before the route that uses it",
		rules:   []string{"R15", "R16"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwNewClusterBeforeRoute, scriptedDelta: deltaNewClusterBeforeRoute}},
	{id: "warming-answered", title: "an updated cluster's EDS and an updated listener's RDS are sent although unchanged",
		rules:   []string{"R16"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwWarmingAnswered, scriptedDelta: deltaWarmingAnswered}},
	{id: "full-state", title: "LDS and CDS responses hold every subscribed resource; one left out is deleted",
		rules:   []string{"S1"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwFullState}},
	{id: "partial-update", title: "RDS and EDS responses hold only what changed",
		rules:   []string{"S2"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwPartialUpdate}},
	{id: "reconnect-after-restart", title: "a client reconnecting to a restarted server with what it holds gets only what differs",
		clientRules: map[client][]string{scriptedSotW: {"S3", "S6", "P3"}, scriptedDelta: {"D3", "D8"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwReconnect, scriptedDelta: deltaReconnect}},
	{id: "unsubscribe", title: "dropping a name needs no answer and stops its updates",
		clientRules: map[client][]string{scriptedSotW: {"S4"}, scriptedDelta: {"D6"}},
		scripts:     map[client]func(*testing.T, server){scriptedSotW: sotwUnsubscribe, scriptedDelta: deltaUnsubscribe}},
	{id: "newest-request-wins", title: "of several requests waiting, only the newest is answered",
		rules:   []string{"S5"},
		scripts: map[client]func(*testing.T, server){memorySotW: sotwNewestRequestWins}},
	{id: "removed-resources", title: "deletions and missing names are announced in removed_resources, and only there",
		rules:   []string{"D7"},
		scripts: map[client]func(*testing.T, server){scriptedDelta: deltaRemovedResources}},
	{id: "empty-assignment", title: "a cluster without endpoints gets an explicit empty ClusterLoadAssignment",
		rules:   []string{"P2"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwEmptyAssignment, scriptedDelta: deltaEmptyAssignment}},
}

// scope is the scope the scripted conversations are served.
const scope = "edge"

// edgeNode is a client of scope.
func edgeNode(id string) *corev3.Node { return &corev3.Node{Id: id, Cluster: scope} }

func setCluster(name string, opts ...xdstest.ClusterOption) store.Change {
	return store.Set(scope, xdstest.Cluster(name, opts...))
}

func setEndpoints(cluster string, addrs ...string) store.Change {
	return store.Set(scope, xdstest.Endpoints(cluster, addrs...))
}

func setListener(name string, port uint32, route string) store.Change {
	return store.Set(scope, xdstest.Listener(name, port, route))
}

func setRoute(name string, clusters ...string) store.Change {
	return store.Set(scope, xdstest.SimpleRoute(name, clusters...))
}

func drop(typeURL, name string) store.Change { return store.Delete(scope, typeURL, name) }
