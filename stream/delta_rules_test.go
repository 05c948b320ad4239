package stream_test

import (
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

func eps(name, addr string) store.Change { return store.Set(scope, xdstest.Endpoints(name, addr)) }

// D1, D8: every delta response has a nonce; each resource carries its content
// hash as version, the same in every process; ACK is the echoed nonce.
func TestD1D8NoncesAndContentVersions(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a", "b")...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "*")
	r := c.ExpectResponse(conv.Updated("a", "b"), conv.NoRemoved())
	want := e.st.View().Table(scope, cds).Get("a").Version
	assert.Equal(t, want, r.VersionOf("a"))
	other := store.New()
	_, err := other.Commit(store.Set("x", xdstest.Cluster("a")))
	require.NoError(t, err)
	assert.Equal(t, other.View().Table("x", cds).Get("a").Version, r.VersionOf("a"), "D8: versions are content hashes")
	c.ACK()
	s := e.status(t, "envoy-1", func(s stream.StreamStatus) bool { return typeStatus(s, cds).VersionACKed != "" })
	assert.Equal(t, "delta", s.Variant)
	assert.Equal(t, r.GetSystemVersionInfo(), typeStatus(s, cds).VersionACKed)

	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(9*time.Second))))
	r2 := c.ExpectResponse(conv.Updated("a"), conv.NoRemoved())
	assert.NotEqual(t, r.Nonce, r2.Nonce)
	assert.NotEqual(t, r.VersionOf("a"), r2.VersionOf("a"))
}

// D2: subscribe and unsubscribe are honoured whatever nonce the request carries,
// even a stale one.
func TestD2SubscriptionWhateverNonce(t *testing.T) {
	e := newEnv(t)
	e.commit(t, eps("a", "10.0.0.1:80"), eps("b", "10.0.0.1:80"))
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(eds, "a")
	first := c.ExpectResponse(conv.Updated("a"))
	e.commit(t, eps("a", "10.0.0.2:80"))
	c.ExpectResponse(conv.Updated("a"))
	c.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: eds, ResponseNonce: first.GetNonce(), ResourceNamesSubscribe: []string{"b"}})
	c.ExpectResponse(conv.Updated("b"))
}

// D3: a reconnecting client with initial_resource_versions gets only what
// differs, and removed_resources for what no longer exists; across a restart of
// the server (new process state, same store content) too.
func TestD3ReconnectAfterRestart(t *testing.T) {
	st := store.New()
	e := newEnvWith(t, st)
	e.commit(t, clusters("keep", "change", "gone")...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "*")
	r := c.ExpectResponse(conv.Updated("keep", "change", "gone"))
	c.ACK()
	held := map[string]string{"keep": r.VersionOf("keep"), "change": r.VersionOf("change"), "gone": r.VersionOf("gone")}

	// The server restarts (a fresh stream server over the same content); meanwhile
	// one cluster changed and one was deleted.
	restarted := newEnvWith(t, st)
	restarted.commit(t, store.Set(scope, xdstest.Cluster("change", xdstest.WithConnectTimeout(8*time.Second))), store.Delete(scope, cds, "gone"))
	again := conv.DeltaADS(t, restarted.cc, edge)
	again.InitialVersions(cds, held, "*")
	again.ExpectResponse(conv.Updated("change"), conv.Removed("gone"))
	again.ACK()
	again.ExpectNothing()

	// Nothing changed at all: a reconnect sends nothing.
	quiet := conv.DeltaADS(t, restarted.cc, node("envoy-2", scope))
	v := restarted.st.View().Table(scope, cds)
	quiet.InitialVersions(cds, map[string]string{"keep": v.Get("keep").Version, "change": v.Get("change").Version}, "*")
	quiet.ExpectNothing()
}

// D4, D6: "*" together with explicit names; unsubscribing an explicit name while
// wildcard-subscribed sends it again, since the wildcard still covers it.
func TestD4D6WildcardAndExplicit(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a", "b")...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "*", "a")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Unsubscribe(cds, "a")
	c.ExpectResponse(conv.Updated("a"), conv.NoRemoved())
	c.ACK()
	// Dropping the wildcard keeps nothing explicit: changes no longer arrive.
	c.Unsubscribe(cds, "*")
	c.ExpectNothing()
	e.commit(t, store.Set(scope, xdstest.Cluster("b", xdstest.WithConnectTimeout(5*time.Second))))
	c.ExpectNothing()

	// Legacy wildcard: a first request naming nothing.
	legacy := conv.DeltaADS(t, e.cc, node("envoy-2", scope))
	legacy.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node("envoy-2", scope), TypeUrl: cds})
	legacy.ExpectResponse(conv.Updated("a", "b"))
}

// D5: a name in resource_names_subscribe is always answered, even if the client
// seems current; D6: unsubscribing a name it does not hold needs no answer.
func TestD5D6SubscribeAnswered(t *testing.T) {
	e := newEnv(t)
	e.commit(t, eps("a", "10.0.0.1:80"))
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Subscribe(eds, "a")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	c.Unsubscribe(eds, "never-held")
	c.ExpectNothing()
	c.Unsubscribe(eds, "a")
	c.ExpectNothing()
	e.commit(t, eps("a", "10.0.0.2:80"))
	c.ExpectNothing()
}

// D7: a subscribed name that does not exist is announced in removed_resources; a
// deletion is announced there and only there.
func TestD7RemovedResources(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "a", "ghost")
	c.ExpectResponse(conv.Updated("a"), conv.Removed("ghost"))
	c.ACK()
	e.commit(t, store.Delete(scope, cds, "a"))
	c.ExpectResponse(conv.Updated(), conv.Removed("a"))
	c.ACK()
	e.commit(t, clusters("ghost")...)
	c.ExpectResponse(conv.Updated("ghost"), conv.NoRemoved())
}

// R6: a NACK does not make the server send the same content again.
func TestDeltaR6NoResendOnNACK(t *testing.T) {
	e := newEnv(t)
	e.commit(t, clusters("a")...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(9*time.Second))))
	bad := c.ExpectResponse(conv.Updated("a"))
	c.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: bad.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: 14, Message: "rejected a"}}) // P1: any code
	c.ExpectNothing()
	s := e.status(t, "envoy-1", func(s stream.StreamStatus) bool { return typeStatus(s, cds).LastNACK != nil })
	assert.Equal(t, "rejected a", typeStatus(s, cds).LastNACK.Message)
	assert.Equal(t, bad.GetSystemVersionInfo(), typeStatus(s, cds).LastNACK.RejectedVersion)
	e.commit(t, clusters("b")...)
	c.ExpectResponse(conv.Updated("b"))
}

// R15: push order, and make before break: a deleted cluster the client's routes
// still use, and its endpoints, are removed only after the route update is ACKed;
// the route to a new cluster waits until the client has asked for its endpoints.
func TestDeltaR15OrderAndMakeBeforeBreak(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("a", "b"), store.Set(scope, xdstest.SimpleRoute("r", "a")), eps("a", "10.0.0.1:80"))...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(eds, "a", "b")
	c.ExpectResponse(conv.Updated("a", "b"))
	c.ACK()
	c.Subscribe(rds, "r")
	c.ExpectResponse(conv.Updated("r"))
	c.ACK()

	// Route r moves from a to new cluster c; a and its endpoints are deleted.
	e.commit(t, store.Set(scope, xdstest.SimpleRoute("r", "c")), store.Set(scope, xdstest.Cluster("c")),
		store.Delete(scope, cds, "a"), store.Delete(scope, eds, "a"))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("c"), conv.NoRemoved())
	c.ExpectNothing() // a's endpoints stay, and the route waits for c to warm
	// Envoy subscribes c's endpoints before it ACKs the clusters (R19).
	c.Subscribe(eds, "c")
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("c"), conv.NoRemoved())
	c.ExpectResponse(conv.DTypeURL(rds), conv.Updated("r"))
	c.ACK(cds)
	c.ACK(eds)
	c.ExpectNothing() // not before the route update is ACKed
	c.ACK(rds)
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated(), conv.Removed("a"))
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated(), conv.Removed("a"))
}

// R15, R18: a client that names its clusters (gRPC, P4) asks for the new one
// only after it has the route: the old cluster stays until the client has
// answered the route update; then it goes (grpc-go ACKs the route before it
// subscribes the new cluster, and the server can wait on nothing else, R19).
func TestR15ReplacementBeforeRemoval(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("c1"), store.Set(scope, xdstest.SimpleRoute("r", "c1")))...)
	c := conv.ADS(t, e.cc, node("grpc-1", scope))
	c.Request(rds, "r")
	c.ExpectResponse(conv.Names("r"))
	c.ACK()
	c.Request(cds, "c1")
	c.ExpectResponse(conv.Names("c1"))
	c.ACK()

	e.commit(t, store.Set(scope, xdstest.SimpleRoute("r", "c2")), store.Set(scope, xdstest.Cluster("c2")), store.Delete(scope, cds, "c1"))
	c.ExpectResponse(conv.TypeURL(rds), conv.Names("r"))
	c.ExpectNothing() // c1 stays while the client may still route to it
	c.ACK()
	c.ExpectResponse(conv.TypeURL(cds), conv.Names())
	c.ACK()
	c.Request(cds, "c1", "c2")
	c.ExpectResponse(conv.TypeURL(cds), conv.Names("c2"))
}

// R16, P2: an updated cluster's endpoints are answered although unchanged; a
// cluster without endpoints gets an explicit empty assignment.
func TestDeltaR16P2(t *testing.T) {
	e := newEnv(t)
	e.commit(t, append(clusters("a", "lonely"), eps("a", "10.0.0.1:80"))...)
	c := conv.DeltaADS(t, e.cc, edge)
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a", "lonely"))
	c.ACK()
	c.Subscribe(eds, "a", "lonely")
	r := c.ExpectResponse(conv.Updated("a", "lonely"), conv.NoRemoved())
	assert.Empty(t, r.Resource("lonely").(*endpointv3.ClusterLoadAssignment).GetEndpoints())
	c.ACK()
	e.commit(t, store.Set(scope, xdstest.Cluster("a", xdstest.WithConnectTimeout(6*time.Second))))
	c.ExpectResponse(conv.DTypeURL(cds), conv.Updated("a"))
	c.ExpectResponse(conv.DTypeURL(eds), conv.Updated("a"), conv.VersionOf("a", r.VersionOf("a")))
}

// Delta streams on the per-type services, unknown types and bad input.
func TestDeltaServicesAndBadInput(t *testing.T) {
	e := newEnv(t, func(o *stream.Options) { o.Limits.MaxNames = 2 })
	e.commit(t, append(clusters("a"), eps("a", "10.0.0.1:80"), store.SetNamed(scope, "xdstp://leds/ep-1", &endpointv3.LbEndpoint{}))...)
	for typeURL, name := range map[string]string{cds: "a", eds: "a", protocol.TypeLbEndpoint: "xdstp://leds/ep-1"} {
		c := conv.DeltaTyped(t, e.cc, typeURL, node("typed-"+protocol.Short(typeURL), scope))
		c.Subscribe(typeURL, name)
		c.ExpectResponse(conv.DTypeURL(typeURL), conv.Updated(name))
		c.ACK()
		c.ExpectNothing()
	}
	const unknown = "type.googleapis.com/envoy.config.unknown.v3.Thing"
	u := conv.DeltaADS(t, e.cc, node("unknown", scope))
	u.Subscribe(unknown, "x")
	u.ExpectResponse(conv.DTypeURL(unknown), conv.Updated(), conv.Removed("x"))

	noNode := conv.DeltaADS(t, e.cc, nil)
	noNode.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds})
	assert.Contains(t, noNode.ExpectError(codes.InvalidArgument).Error(), "node")
	many := conv.DeltaADS(t, e.cc, node("many", scope))
	many.Subscribe(eds, "1", "2", "3")
	assert.Contains(t, many.ExpectError(codes.InvalidArgument).Error(), "limit of 2")
}
