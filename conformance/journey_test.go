package conformance_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/leanxds/leanxds/internal/xdstest"
)

// A journey is a scenario written once for every client: store commits of a small
// service configuration, and expectations about where the client's traffic goes
// and what the server records of it. Each client renders the configuration the
// way it needs it (a proxyless client's api_listener, Envoy's listener on a
// port), sends its own kind of traffic (RPCs, HTTP requests, or, for the reactive
// scripted client, requests resolved through the configuration it holds), and
// the checks of what the server recorded are the same for all.

// The names every journey's configuration uses: grpc-go dials xds:///svc.
const (
	svcListener = "svc"
	svcRoute    = "svc-route"
)

// journeyClients are the clients that run every journey, unless it says otherwise.
var journeyClients = []client{scriptedSotW, scriptedDelta, grpcGo, envoySotW, envoyDelta}

// journeys are the scenarios every client runs.
var journeys = []scenario{
	{id: "initial-config", title: "a new client gets listener, route, cluster and endpoints and its first request succeeds",
		clientRules: map[client][]string{
			scriptedSotW: {"R2", "R12"}, scriptedDelta: {"R2", "R12"}, grpcGo: {"R2", "R12", "P4"},
			envoySotW: {"R11"}, envoyDelta: {"D4"},
		},
		clients: journeyClients,
		steps: []step{
			apply(service("c1", "b1")),
			expectServed("b1"),
			expectNamedSubscriptions().only(scriptedSotW, scriptedDelta, grpcGo),
			expectWildcardSubscriptions().only(envoySotW, envoyDelta),
		}},
	{id: "endpoint-change", title: "an endpoint change moves traffic; the other cluster's endpoints and the other types are left alone",
		rules:       []string{"R3"},
		clientRules: map[client][]string{scriptedSotW: {"S2"}, grpcGo: {"S2"}, envoySotW: {"S2"}},
		clients:     journeyClients,
		steps: []step{
			apply(service("c1", "b1").with("c2", "b3").split("c1", 1, "c2", 1)),
			expectServed("b1", "b3"),
			apply(service("c1", "b2").with("c2", "b3").split("c1", 1, "c2", 1)),
			expectServed("b2", "b3"),
			expectOnlyChanged(eds, "c1"),
			expectUnchangedSinceApply(lds, rds, cds),
		}},
	{id: "weighted-split", title: "a route split 80/20 between two clusters splits traffic 80/20 (±6 points over 1000 requests)",
		rules:   []string{"R9"},
		clients: journeyClients,
		steps: []step{
			apply(service("c1", "b1")),
			expectServed("b1"),
			apply(service("c1", "b1").with("c2", "b2").split("c1", 80, "c2", 20)),
			expectSplit(map[string]int{"b1": 80, "b2": 20}),
		}},
	{id: "cluster-remove-readd", title: "a route moves to a new cluster and the old one is deleted with no failed request; then it comes back",
		rules: []string{"R15", "R9"},
		clientRules: map[client][]string{
			scriptedSotW: {"S4"}, grpcGo: {"S4", "P6"}, scriptedDelta: {"D6"}, envoySotW: {"S1"}, envoyDelta: {"D7"},
		},
		clients: journeyClients,
		steps: []step{
			apply(service("c1", "b1")),
			expectServed("b1"),
			switchWithoutFailure(service("c2", "b2"), "b2"),
			expectGone(cds, "c1"),
			switchWithoutFailure(service("c1", "b1"), "b1"),
			expectGone(cds, "c2"),
		}},
	{id: "cluster-update-warming", title: "an updated cluster gets its endpoints and an updated listener its route again, so nothing stays warming",
		rules:   []string{"R16"},
		clients: journeyClients,
		steps: []step{
			apply(service("c1", "b1")),
			expectServed("b1"),
			apply(service("c1", "b1").updated()),
			expectAnswered(eds, "c1"),
			expectAnswered(rds, svcRoute),
			expectServed("b1"),
		}},
	{id: "invalid-listener", title: "a listener the client rejects is NACKed and recorded with the client's message; the old one keeps serving",
		rules:       []string{"R4", "R6", "P1"},
		clientRules: map[client][]string{scriptedSotW: {"R5"}, grpcGo: {"R5"}, envoySotW: {"R5"}, scriptedDelta: {"D1"}, envoyDelta: {"D1"}},
		clients:     journeyClients,
		steps: []step{
			apply(service("c1", "b1")),
			expectServed("b1"),
			apply(service("c1", "b1").brokenListener()),
			expectNACK(lds, svcListener),
			expectServed("b1"),
			apply(service("c1", "b2")),
			expectServed("b2"),
		}},
	{id: "invalid-cluster", title: "a cluster with an LB policy gRPC does not support (MAGLEV) is NACKed; RPCs keep using the last good cluster",
		rules:       []string{"R4", "R6", "P1"},
		clientRules: map[client][]string{scriptedSotW: {"R5"}, grpcGo: {"R5"}, scriptedDelta: {"D1"}},
		clients:     []client{scriptedSotW, scriptedDelta, grpcGo}, // Envoy accepts MAGLEV
		steps: []step{
			apply(service("c1", "b1")),
			expectServed("b1"),
			apply(service("c1", "b1").lbPolicy("c1", clusterv3.Cluster_MAGLEV)),
			expectNACK(cds, "c1"),
			expectServed("b1"),
			apply(service("c1", "b2")),
			expectServed("b2"),
		}},
	{id: "server-restart", title: "the server restarts: traffic flows meanwhile, the client reconnects with what it holds, is sent nothing new, and keeps working",
		clientRules: map[client][]string{
			scriptedSotW: {"S6"}, grpcGo: {"S6", "P5"}, envoySotW: {"S3", "S6"},
			scriptedDelta: {"D3", "D8", "D9"}, envoyDelta: {"D3", "D8", "D9"},
		},
		clients: journeyClients,
		steps: []step{
			apply(service("c1", "b1")),
			expectServed("b1"),
			restartServer(),
			expectReconnected(),
			expectResubscribedAtOnce().only(grpcGo),
			apply(service("c1", "b2")),
			expectServed("b2"),
		}},
	{id: "scopes", title: "two clients in different scopes get different configurations under the same names",
		rules:   []string{"R8"},
		clients: journeyClients,
		steps: []step{
			apply(service("c1", "b1")).by("blue"),
			apply(service("c1", "b2")).by("green"),
			expectServed("b1").by("blue"),
			expectServed("b2").by("green"),
		}},
}

// config is the configuration of the service a journey's client uses: one
// listener, one route sending traffic to clusters by weight, and the backends
// behind each cluster. Its methods return modified copies.
type config struct {
	// weights is the route's split: cluster → weight.
	weights map[string]uint32
	// clusters maps each cluster to the backends of its endpoints.
	clusters map[string][]string
	// lb sets the load-balancing policy of some clusters; ROUND_ROBIN otherwise.
	lb map[string]clusterv3.Cluster_LbPolicy
	// revision changes the listener and the clusters without changing their
	// routes and endpoints (R16).
	revision int
	// broken makes the listener one every client rejects: its HTTP filters hold
	// the router twice, so a terminal filter is not last (leanxds's own validation,
	// of each message's constraints, accepts it).
	broken bool
}

// service is the configuration routing everything to cluster, served by backends.
func service(cluster string, backends ...string) config {
	return config{weights: map[string]uint32{cluster: 1}, clusters: map[string][]string{cluster: backends}}
}

func (c config) clone() config {
	c.weights = maps.Clone(c.weights)
	c.clusters = maps.Clone(c.clusters)
	c.lb = maps.Clone(c.lb)
	return c
}

// with adds cluster, served by backends.
func (c config) with(cluster string, backends ...string) config {
	c = c.clone()
	c.clusters[cluster] = backends
	return c
}

// split routes traffic by weight: cluster, weight, cluster, weight...
func (c config) split(pairs ...any) config {
	c = c.clone()
	c.weights = map[string]uint32{}
	for i := 0; i+1 < len(pairs); i += 2 {
		c.weights[pairs[i].(string)] = uint32(pairs[i+1].(int))
	}
	return c
}

func (c config) lbPolicy(cluster string, p clusterv3.Cluster_LbPolicy) config {
	c = c.clone()
	if c.lb == nil {
		c.lb = map[string]clusterv3.Cluster_LbPolicy{}
	}
	c.lb[cluster] = p
	return c
}

func (c config) updated() config {
	c = c.clone()
	c.revision++
	return c
}

func (c config) brokenListener() config {
	c = c.clone()
	c.broken = true
	return c
}

// resources renders the configuration, but for the listener, which each client
// renders as it needs it.
func (c config) resources(addr func(backend string) string) []proto.Message {
	var action *routev3.Route
	if len(c.weights) == 1 {
		for cl := range c.weights {
			action = xdstest.RouteTo("/", cl)
		}
	} else {
		action = xdstest.WeightedRoute("/", c.weights)
	}
	out := []proto.Message{xdstest.Route(svcRoute, xdstest.VirtualHost("svc", []string{"*"}, action))}
	for _, name := range slices.Sorted(maps.Keys(c.clusters)) {
		opts := []xdstest.ClusterOption{xdstest.WithConnectTimeout(time.Duration(1+c.revision) * time.Second)}
		if p, ok := c.lb[name]; ok {
			opts = append(opts, xdstest.WithLbPolicy(p))
		}
		var addrs []string
		for _, b := range c.clusters[name] {
			addrs = append(addrs, addr(b))
		}
		out = append(out, xdstest.Cluster(name, opts...), xdstest.Endpoints(name, addrs...))
	}
	return out
}

// shapeListener applies the configuration's revision and brokenness to a
// listener built by xdstest.APIListener or xdstest.Listener.
func (c config) shapeListener(l *listenerv3.Listener) *listenerv3.Listener {
	editHCM(l, func(h *hcmv3.HttpConnectionManager) {
		h.StatPrefix = fmt.Sprintf("svc-%d", c.revision)
		if c.broken {
			h.HttpFilters = append(h.HttpFilters, proto.Clone(h.HttpFilters[len(h.HttpFilters)-1]).(*hcmv3.HttpFilter))
		}
	})
	return l
}

// editHCM edits the HTTP connection manager of a listener, in its api_listener
// or its filter chains.
func editHCM(l *listenerv3.Listener, edit func(*hcmv3.HttpConnectionManager)) {
	if al := l.GetApiListener(); al != nil {
		h := new(hcmv3.HttpConnectionManager)
		if err := al.GetApiListener().UnmarshalTo(h); err != nil {
			panic(err)
		}
		edit(h)
		al.ApiListener = xdstest.Any(h)
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			h := new(hcmv3.HttpConnectionManager)
			if f.GetTypedConfig().UnmarshalTo(h) != nil {
				continue
			}
			edit(h)
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.Any(h)}
		}
	}
}

// String describes the configuration in step names.
func (c config) String() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(c.weights)) {
		parts = append(parts, fmt.Sprintf("%s×%d→%s", name, c.weights[name], strings.Join(c.clusters[name], ",")))
	}
	for _, name := range slices.Sorted(maps.Keys(c.clusters)) {
		if _, routed := c.weights[name]; !routed {
			parts = append(parts, fmt.Sprintf("%s(unrouted)→%s", name, strings.Join(c.clusters[name], ",")))
		}
	}
	s := strings.Join(parts, " ")
	for name, p := range c.lb {
		s += fmt.Sprintf(" %s:%s", name, p)
	}
	if c.revision > 0 {
		s += fmt.Sprintf(" revision %d", c.revision)
	}
	if c.broken {
		s += " with a broken listener"
	}
	return s
}
