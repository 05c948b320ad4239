package conformance_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/internal/conv"
	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// appliedScenarios are about who runs what: for a store revision, which nodes
// run it (ACKed), which rejected it (NACKed) and which have not answered yet
// (stream.Server.Applied, WaitFor).
var appliedScenarios = []scenario{
	{id: "applied-unchanged-subscription", title: "a node whose subscriptions a revision did not change runs it without a new response",
		rules:   []string{"R20"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwAppliedUnchanged, scriptedDelta: deltaAppliedUnchanged}},
	{id: "applied-pending-until-ack", title: "a node is pending for a revision until it ACKs the response made from it",
		rules:   []string{"R20"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwAppliedPending, scriptedDelta: deltaAppliedPending}},
	{id: "applied-nack", title: "a NACK is reported with the client's detail and the revision of the response it rejects",
		rules:   []string{"R21", "R26", "R4", "P1"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwAppliedNACK, scriptedDelta: deltaAppliedNACK}},
	{id: "applied-reconnect", title: "a node that reconnects is judged by its new stream; one with no stream is not listed",
		rules:   []string{"R22"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwAppliedReconnect, scriptedDelta: deltaAppliedReconnect}},
	{id: "applied-services", title: "a node on ADS and a per-type service runs a revision once every one of its streams does",
		rules:   []string{"R22", "R20", "R21"},
		scripts: map[client]func(*testing.T, server){scriptedSotW: sotwAppliedServices, scriptedDelta: deltaAppliedServices}},
	{id: "applied-router", title: "a node a Router serves an earlier view runs that view's revision, not the store's newest",
		rules: []string{"R20"},
		run: map[client]func(*testing.T){
			memorySotW: func(t *testing.T) { appliedRouter(t, memorySotW) }, scriptedSotW: func(t *testing.T) { appliedRouter(t, scriptedSotW) },
			memoryDelta: func(t *testing.T) { appliedRouter(t, memoryDelta) }, scriptedDelta: func(t *testing.T) { appliedRouter(t, scriptedDelta) },
		}},
}

// The server's side of who runs what.

// applied returns where the nodes sel selects stand against rev once want
// holds of it: over the wire it waits up to waitFor (stream.Server.WaitFor,
// which first wakes the streams that have not read rev); in memory it must
// hold now, the streams having read the store when the script last waited
// for their responses.
func (s *xdsServer) applied(t testing.TB, rev uint64, sel stream.Selector, want func(*stream.Applied) bool) stream.Applied {
	t.Helper()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	a, err := srv.WaitFor(ctx, rev, sel, want)
	if err != nil {
		t.Fatalf("nodes not where expected against revision %d within %s: %v; they stand: %s", rev, waitFor, err, describeApplied(a))
	}
	return a
}

func (s *memoryServer) applied(t testing.TB, rev uint64, sel stream.Selector, want func(*stream.Applied) bool) stream.Applied {
	t.Helper()
	a := s.m.Applied(rev, sel)
	if !want(&a) {
		t.Fatalf("nodes not where expected against revision %d; they stand: %s", rev, describeApplied(a))
	}
	return a
}

func describeApplied(a stream.Applied) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d acked, %d nacked, %d pending", a.ACKed, a.NACKed, a.Pending)
	for _, n := range a.Nodes {
		fmt.Fprintf(&b, "\n  %s (%s) %s at %d", n.NodeID, n.Scope, n.State, n.Revision)
		if r := n.Rejection; r != nil {
			fmt.Fprintf(&b, ": %s %s rev %d %q", shortType(r.TypeURL), r.Version, r.Revision, r.Detail)
		}
	}
	return b.String()
}

// revision returns the store's revision now.
func revision(s server) uint64 { return s.view().Revision() }

// nodeIs wants node id, and only it, in state.
func nodeIs(id string, state stream.NodeState) func(*stream.Applied) bool {
	return func(a *stream.Applied) bool {
		return len(a.Nodes) == 1 && a.Nodes[0].NodeID == id && a.Nodes[0].State == state
	}
}

// nodesAre wants the nodes, by id, in the states given.
func nodesAre(states map[string]stream.NodeState) func(*stream.Applied) bool {
	return func(a *stream.Applied) bool {
		if len(a.Nodes) != len(states) {
			return false
		}
		for _, n := range a.Nodes {
			if states[n.NodeID] != n.State {
				return false
			}
		}
		return true
	}
}

func noNodes(a *stream.Applied) bool { return len(a.Nodes) == 0 }

// R20: a commit to another scope, and one to a type the node does not
// subscribe to, change nothing it holds: it runs the new revision without a
// response (versions are digests of content).
func sotwAppliedUnchanged(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.ads(t, edgeNode("n1"))
	c.Request(cds)
	r1 := c.ExpectResponse(conv.Names("a"))
	c.ACK()
	sent := s.status(t, "n1", nil).Types[0].NonceSent

	s.commit(t, store.Set("other", xdstest.Cluster("b")))
	s.commit(t, setListener("l", 80, "r"))
	rev := revision(s)
	c.ExpectNothing()
	a := s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
	expectEqual(t, "revision n1 runs", a.Nodes[0].Revision, rev)
	expectEqual(t, "scope", a.Nodes[0].Scope, scope)
	st := s.status(t, "n1", nil).Types[0]
	expectEqual(t, "nonce of the newest response", st.NonceSent, sent)
	expectEqual(t, "version ACKed", st.VersionACKed, r1.Version())
	c.ExpectNothing()
}

func deltaAppliedUnchanged(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.deltaADS(t, edgeNode("n1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	sent := s.status(t, "n1", nil).Types[0].NonceSent

	s.commit(t, store.Set("other", xdstest.Cluster("b")))
	s.commit(t, setListener("l", 80, "r"))
	rev := revision(s)
	c.ExpectNothing()
	a := s.applied(t, rev, stream.Selector{Scope: scope}, nodeIs("n1", stream.NodeACKed))
	expectEqual(t, "revision n1 runs", a.Nodes[0].Revision, rev)
	expectEqual(t, "nonce of the newest response", s.status(t, "n1", nil).Types[0].NonceSent, sent)
	s.applied(t, rev, stream.Selector{Scope: "other"}, noNodes)
	c.ExpectNothing()
}

// R20: sent but not answered is pending; the ACK makes it run the revision.
func sotwAppliedPending(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.ads(t, edgeNode("n1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	before := revision(s)
	s.applied(t, before, stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	rev := revision(s)
	c.ExpectResponse(conv.Names("a"))
	a := s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodePending))
	expectEqual(t, "revision n1 runs", a.Nodes[0].Revision, before)
	expectEqual(t, "pending", a.Pending, 1)
	c.ACK()
	a = s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
	expectEqual(t, "revision n1 runs", a.Nodes[0].Revision, rev)
	expectEqual(t, "acked", a.ACKed, 1)
	if !a.Done() {
		t.Errorf("every node ACKed, yet not Done: %s", describeApplied(a))
	}
}

func deltaAppliedPending(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.deltaADS(t, edgeNode("n1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	before := revision(s)
	s.applied(t, before, stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	rev := revision(s)
	c.ExpectResponse(conv.Updated("a"))
	a := s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodePending))
	expectEqual(t, "revision n1 runs", a.Nodes[0].Revision, before)
	// Nothing sent may be unanswered: pending for the earlier revision too.
	s.applied(t, before, stream.Selector{}, nodeIs("n1", stream.NodePending))
	c.ACK()
	a = s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
	expectEqual(t, "revision n1 runs", a.Nodes[0].Revision, rev)
}

// R21: a NACK names the type, the version rejected, the client's detail and
// the revision of the response it rejected; the node is NACKed for that
// revision and every earlier one until it answers a newer response.
func sotwAppliedNACK(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.ads(t, edgeNode("n1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	c.ACK()
	before := revision(s)
	s.applied(t, before, stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	bad := revision(s)
	r := c.ExpectResponse(conv.Names("a"))
	c.NACK("unsupported lb policy")
	a := s.applied(t, bad, stream.Selector{}, nodeIs("n1", stream.NodeNACKed))
	checkRejection(t, a, r.Version(), bad, "unsupported lb policy")
	expectEqual(t, "nacked", a.NACKed, 1)
	if !a.Done() {
		t.Errorf("a node NACKed, yet not Done")
	}
	s.applied(t, before, stream.Selector{}, nodeIs("n1", stream.NodeNACKed))

	// Another scope changes: the node still runs what it held before bad,
	// and the newest view would send it the very content it rejected (R6:
	// nothing is sent): it is NACKed for that revision too (R26).
	s.commit(t, store.Set("other", xdstest.Cluster("b")))
	later := revision(s)
	c.ExpectNothing() // R6
	a = s.applied(t, later, stream.Selector{}, nodeIs("n1", stream.NodeNACKed))
	checkRejection(t, a, r.Version(), later, "unsupported lb policy")
	expectEqual(t, "revision n1 runs", a.Nodes[0].Revision, before)

	s.commit(t, setCluster("a"))
	fixed := revision(s)
	c.ExpectResponse(conv.Names("a"))
	s.applied(t, fixed, stream.Selector{}, nodeIs("n1", stream.NodePending))
	c.ACK()
	s.applied(t, fixed, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
	s.applied(t, bad, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
}

func deltaAppliedNACK(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	c := s.deltaADS(t, edgeNode("n1"))
	c.Subscribe(cds, "*")
	c.ExpectResponse(conv.Updated("a"))
	c.ACK()
	s.applied(t, revision(s), stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	bad := revision(s)
	r := c.ExpectResponse(conv.Updated("a"))
	c.NACK("unsupported lb policy")
	a := s.applied(t, bad, stream.Selector{}, nodeIs("n1", stream.NodeNACKed))
	checkRejection(t, a, r.GetSystemVersionInfo(), bad, "unsupported lb policy")

	// R26: a commit to another scope sends nothing; the rejection stands
	// against it.
	s.commit(t, store.Set("other", xdstest.Cluster("b")))
	later := revision(s)
	c.ExpectNothing() // R6
	a = s.applied(t, later, stream.Selector{}, nodeIs("n1", stream.NodeNACKed))
	checkRejection(t, a, r.GetSystemVersionInfo(), later, "unsupported lb policy")

	s.commit(t, setCluster("a"))
	fixed := revision(s)
	c.ExpectResponse(conv.Updated("a"))
	s.applied(t, fixed, stream.Selector{}, nodeIs("n1", stream.NodePending))
	c.ACK()
	s.applied(t, fixed, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
}

func checkRejection(t *testing.T, a stream.Applied, version string, rev uint64, detail string) {
	t.Helper()
	r := a.Nodes[0].Rejection
	if r == nil {
		t.Fatalf("NACKed without a rejection: %s", describeApplied(a))
	}
	expectEqual(t, "rejected type", r.TypeURL, cds)
	expectEqual(t, "rejected version", r.Version, version)
	expectEqual(t, "revision of the rejected response", r.Revision, rev)
	expectEqual(t, "detail", r.Detail, detail)
}

// R22: the old stream of a node that reconnected does not count, even while
// it is still open; a node without a stream is not listed.
func sotwAppliedReconnect(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	old := s.ads(t, edgeNode("n1"))
	old.Request(cds)
	old.ExpectResponse(conv.Names("a"))
	old.ACK()
	s.applied(t, revision(s), stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	rev := revision(s)
	old.ExpectResponse(conv.Names("a")) // never answered

	c := s.ads(t, edgeNode("n1"))
	c.Request(cds)
	c.ExpectResponse(conv.Names("a"))
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodePending))
	c.ACK()
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
	old.Cancel()
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
	c.Cancel()
	s.applied(t, rev, stream.Selector{}, noNodes)
}

func deltaAppliedReconnect(t *testing.T, s server) {
	s.commit(t, setCluster("a"))
	old := s.deltaADS(t, edgeNode("n1"))
	old.Subscribe(cds, "*")
	r := old.ExpectResponse(conv.Updated("a"))
	old.ACK()
	s.applied(t, revision(s), stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	rev := revision(s)
	old.ExpectResponse(conv.Updated("a")) // never answered

	c := s.deltaADS(t, edgeNode("n1"))
	c.InitialVersions(cds, map[string]string{"a": r.GetResources()[0].GetVersion()}, "*")
	c.ExpectResponse(conv.Updated("a"))
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodePending))
	c.ACK()
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))
	old.Cancel()
	c.Cancel()
	s.applied(t, rev, stream.Selector{}, noNodes)
}

// R22: a node on ADS (listeners) and the CDS service runs a revision once both
// streams do; a NACK on either makes it NACKed.
func sotwAppliedServices(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setListener("l", 80, "r"))
	ads := s.ads(t, edgeNode("n1"))
	ads.Request(lds)
	ads.ExpectResponse(conv.Names("l"))
	ads.ACK()
	typed := s.typed(t, cds, edgeNode("n1"))
	typed.Request(cds)
	typed.ExpectResponse(conv.Names("a"))
	typed.ACK()
	s.applied(t, revision(s), stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	rev := revision(s)
	typed.ExpectResponse(conv.Names("a"))
	ads.ExpectNothing()
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodePending))
	typed.ACK()
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setListener("l", 81, "r"))
	bad := revision(s)
	ads.ExpectResponse(conv.Names("l"))
	ads.NACK("port in use")
	typed.ExpectNothing()
	a := s.applied(t, bad, stream.Selector{}, nodeIs("n1", stream.NodeNACKed))
	expectEqual(t, "rejected type", a.Nodes[0].Rejection.TypeURL, lds)
	expectEqual(t, "detail", a.Nodes[0].Rejection.Detail, "port in use")
}

func deltaAppliedServices(t *testing.T, s server) {
	s.commit(t, setCluster("a"), setListener("l", 80, "r"))
	ads := s.deltaADS(t, edgeNode("n1"))
	ads.Subscribe(lds, "*")
	ads.ExpectResponse(conv.Updated("l"))
	ads.ACK()
	typed := s.deltaTyped(t, cds, edgeNode("n1"))
	typed.Subscribe(cds, "*")
	typed.ExpectResponse(conv.Updated("a"))
	typed.ACK()
	s.applied(t, revision(s), stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setCluster("a", longerTimeout()))
	rev := revision(s)
	typed.ExpectResponse(conv.Updated("a"))
	ads.ExpectNothing()
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodePending))
	typed.ACK()
	s.applied(t, rev, stream.Selector{}, nodeIs("n1", stream.NodeACKed))

	s.commit(t, setListener("l", 81, "r"))
	bad := revision(s)
	ads.ExpectResponse(conv.Updated("l"))
	ads.NACK("port in use")
	a := s.applied(t, bad, stream.Selector{}, nodeIs("n1", stream.NodeNACKed))
	expectEqual(t, "rejected type", a.Nodes[0].Rejection.TypeURL, lds)
}

// pinRouter serves the nodes it pins the view it pins them at, and every other
// node the store's current view.
type pinRouter struct {
	mu     sync.Mutex
	pinned map[string]store.View
}

func (r *pinRouter) View(_ string, node *corev3.Node, cur store.View) store.View {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.pinned[node.GetId()]; ok {
		return v
	}
	return cur
}

func (r *pinRouter) pin(id string, v store.View) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pinned == nil {
		r.pinned = map[string]store.View{}
	}
	r.pinned[id] = v
}

func (r *pinRouter) unpin(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pinned, id)
}

// R20: a node a Router serves an earlier view is pending for the store's newer
// revision and ACKed for the one it is served; once served the newer view, it
// runs it.
func appliedRouter(t *testing.T, c client) {
	router := &pinRouter{}
	s := serverFor(t, c, stream.Options{Router: router})
	s.commit(t, setCluster("a"))
	base := revision(s)
	router.pin("canary-not", s.view())

	type node interface {
		expectA()
		ack()
		nothing()
	}
	open := func(id string) node {
		if c.scripted() == scriptedDelta {
			d := s.deltaADS(t, edgeNode(id))
			d.Subscribe(cds, "*")
			return &deltaNode{c: d}
		}
		x := s.ads(t, edgeNode(id))
		x.Request(cds)
		return &sotwNode{c: x}
	}
	served, held := open("canary"), open("canary-not")
	for _, n := range []node{served, held} {
		n.expectA()
		n.ack()
	}
	s.applied(t, base, stream.Selector{}, nodesAre(map[string]stream.NodeState{"canary": stream.NodeACKed, "canary-not": stream.NodeACKed}))

	s.commit(t, setCluster("a", longerTimeout()))
	target := revision(s)
	served.expectA()
	served.ack()
	held.nothing() // served the base view: nothing changed for it
	a := s.applied(t, target, stream.Selector{}, nodesAre(map[string]stream.NodeState{"canary": stream.NodeACKed, "canary-not": stream.NodePending}))
	for _, n := range a.Nodes {
		want := target
		if n.NodeID == "canary-not" {
			want = base
		}
		expectEqual(t, "revision "+n.NodeID+" runs", n.Revision, want)
	}
	s.applied(t, base, stream.Selector{}, nodesAre(map[string]stream.NodeState{"canary": stream.NodeACKed, "canary-not": stream.NodeACKed}))
	s.applied(t, target, stream.Selector{IDs: []string{"canary-not"}}, nodeIs("canary-not", stream.NodePending))

	router.unpin("canary-not")
	s.wake(scope)
	held.expectA()
	held.ack()
	s.applied(t, target, stream.Selector{}, nodesAre(map[string]stream.NodeState{"canary": stream.NodeACKed, "canary-not": stream.NodeACKed}))
}

type sotwNode struct{ c *conv.SotW }

func (n *sotwNode) expectA() { n.c.ExpectResponse(conv.Names("a")) }
func (n *sotwNode) ack()     { n.c.ACK() }
func (n *sotwNode) nothing() { n.c.ExpectNothing() }

type deltaNode struct{ c *conv.Delta }

func (n *deltaNode) expectA() { n.c.ExpectResponse(conv.Updated("a")) }
func (n *deltaNode) ack()     { n.c.ACK() }
func (n *deltaNode) nothing() { n.c.ExpectNothing() }

// wake makes the streams of scope read the store again (stream.Server.Wake).
func (s *xdsServer) wake(scope string) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.Wake(scope)
}

// wake does nothing in memory: a stream reads the store when the script waits
// for its responses.
func (s *memoryServer) wake(string) {}
