package conformance_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// The steps of journeys, and the run that takes them with one kind of client.

// driver is one client of a journey.
type driver interface {
	// listener renders the listener this client needs for the configuration.
	listener(cfg config) *listenerv3.Listener
	// start connects the client; it is called once its scope holds content, as a
	// client that starts after its configuration was loaded.
	start(t *testing.T)
	// send sends n requests and says which backend answered each, or why it failed.
	send(ctx context.Context, n int) []reply
	// check reports what the client itself saw wrong (rule breaches on the wire,
	// a configuration dump that disagrees with the server); called when settled.
	check(t *testing.T)
}

// reply is the outcome of one request.
type reply struct {
	backend string
	err     error
}

// backends are the servers a journey's traffic can reach, by id ("b1").
type backends map[string]string

// backendIDs are the backends every journey may use.
var backendIDs = []string{"b1", "b2", "b3"}

// step is one commit or expectation of a journey.
type step struct {
	what string
	// who is the client the step is about; journeys with one client use "a".
	who string
	// clients, when set, are the only clients that take the step.
	clients []client
	do      func(j *journeyRun, who string)
}

// by makes the step about another client of the journey.
func (s step) by(who string) step {
	s.who = who
	s.what += " (" + who + ")"
	return s
}

// only makes the step apply to some clients only.
func (s step) only(cs ...client) step {
	s.clients = cs
	return s
}

// journeyRun is one client kind running one journey.
type journeyRun struct {
	t        *testing.T
	kind     client
	srv      *xdsServer
	backends backends
	drivers  map[string]driver
	started  map[string]bool
	// applied is when the newest configuration of each client was committed.
	applied map[string]time.Time
	// current is the newest configuration of each client, good or not.
	current map[string]config
	// held is, before a restart, the version each client had ACKed per type.
	held map[string]map[string]string
}

// runJourney runs the steps of s with clients of kind c: a new server, new
// backends and one client per name the steps use.
func runJourney(t *testing.T, c client, s scenario) {
	j := &journeyRun{t: t, kind: c, srv: startServer(t), drivers: map[string]driver{}, started: map[string]bool{},
		applied: map[string]time.Time{}, current: map[string]config{}, held: map[string]map[string]string{}}
	j.backends = startBackends(t, c)
	t.Cleanup(func() {
		if t.Failed() {
			for who := range j.drivers {
				t.Logf("what crossed the wire for %s:\n%s", j.nodeID(who), j.srv.log.transcript(j.nodeID(who)))
			}
		}
	})
	for _, st := range s.steps {
		if st.who == "" {
			st.who = "a"
		}
		if _, ok := j.drivers[st.who]; !ok {
			j.drivers[st.who] = newDriver(t, c, j.srv, j.nodeID(st.who), j.scope(st.who), j.backends)
		}
	}
	for i, st := range s.steps {
		if st.clients != nil && !slices.Contains(st.clients, c) {
			continue
		}
		if st.who == "" {
			st.who = "a"
		}
		t.Logf("step %d: %s", i+1, st.what)
		st.do(j, st.who)
		if t.Failed() {
			t.Fatalf("step %d failed: %s", i+1, st.what)
		}
	}
}

func (j *journeyRun) nodeID(who string) string { return who + "-" + string(j.kind) }
func (j *journeyRun) scope(who string) string  { return "scope-" + who }

// newDriver creates the client of kind c for a journey.
func newDriver(t *testing.T, c client, srv *xdsServer, nodeID, scope string, b backends) driver {
	switch c {
	case scriptedSotW, scriptedDelta:
		return newReactiveDriver(t, srv, nodeID, scope, b, c == scriptedDelta)
	case grpcGo:
		return newGRPCDriver(t, srv, nodeID, scope)
	case envoySotW, envoyDelta:
		return newEnvoyDriver(t, srv, nodeID, scope, c == envoyDelta)
	}
	t.Fatalf("no driver for client %s", c)
	return nil
}

// startBackends starts the backends of a journey for clients of kind c: gRPC
// servers for grpc-go, HTTP servers for Envoy, and addresses nobody listens on for
// the reactive client, which only resolves them.
func startBackends(t *testing.T, c client) backends {
	switch c {
	case grpcGo:
		return startGRPCBackends(t)
	case envoySotW, envoyDelta:
		return startHTTPBackends(t)
	}
	b := backends{}
	for i, id := range backendIDs {
		b[id] = fmt.Sprintf("127.0.0.1:%d", 1+i)
	}
	return b
}

// apply commits cfg as the whole content of the client's scope.
func apply(cfg config) step {
	return step{what: "commit " + cfg.String(), do: func(j *journeyRun, who string) {
		d := j.drivers[who]
		scope := j.scope(who)
		changes := []store.Change{store.ReplaceScope(scope), store.Set(scope, d.listener(cfg))}
		for _, m := range cfg.resources(func(b string) string { return j.backends[b] }) {
			changes = append(changes, store.Set(scope, m))
		}
		j.applied[who] = time.Now()
		j.current[who] = cfg
		j.srv.commit(j.t, changes...)
		if !j.started[who] {
			j.started[who] = true
			d.start(j.t)
		}
	}}
}

// expectServed waits until every request reaches one of backends, and each of
// them answers some, and the client has ACKed what it was sent.
func expectServed(backends ...string) step {
	return step{what: "traffic reaches " + strings.Join(backends, ", "), do: func(j *journeyRun, who string) {
		j.waitServed(who, backends)
		j.checkClient(who)
	}}
}

func (j *journeyRun) waitServed(who string, want []string) {
	j.t.Helper()
	d := j.drivers[who]
	deadline := time.Now().Add(waitFor)
	var last string
	for time.Now().Before(deadline) {
		replies := d.send(j.t.Context(), 50)
		seen := map[string]int{}
		failed := 0
		var firstErr error
		for _, r := range replies {
			if r.err != nil {
				failed++
				if firstErr == nil {
					firstErr = r.err
				}
				continue
			}
			seen[r.backend]++
		}
		if failed == 0 && slices.Equal(slices.Sorted(maps.Keys(seen)), slices.Sorted(slices.Values(want))) {
			return
		}
		last = fmt.Sprintf("answered by %v, %d failed (%v)", seen, failed, firstErr)
		time.Sleep(20 * time.Millisecond)
	}
	j.t.Fatalf("traffic of %s did not reach exactly %v within %s: last batch %s", who, want, waitFor, last)
}

// checkClient waits for the client's stream to be settled, then runs the
// client's own checks.
func (j *journeyRun) checkClient(who string) {
	j.t.Helper()
	j.srv.status(j.t, j.nodeID(who), func(s stream.StreamStatus) bool {
		return settledOrNACKed(s, lds, rds, cds, eds)
	})
	j.drivers[who].check(j.t)
}

// settledOrNACKed is settled, counting a type whose newest response was NACKed
// as answered: the client holds the last good version.
func settledOrNACKed(s stream.StreamStatus, types ...string) bool {
	for _, u := range types {
		ts := typeStatus(s, u)
		if ts.TypeURL == "" {
			return false
		}
		// Nothing sent on this stream is settled too: a reconnecting client that
		// held everything (S3, D3).
		nacked := ts.LastNACK != nil && ts.LastNACK.Nonce == ts.NonceSent
		if ts.VersionSent != "" && ts.VersionACKed != ts.VersionSent && !nacked {
			return false
		}
	}
	return true
}

// expectSplit sends 1000 requests and expects each backend to answer its share
// of them, within 6 percentage points. For a binomial share of 80% over 1000
// requests one standard deviation is 1.3 points, so a correct client fails this
// about once in a million runs.
func expectSplit(shares map[string]int) step {
	const requests, tolerance = 1000, 6.0
	return step{what: fmt.Sprintf("traffic splits %v", shares), do: func(j *journeyRun, who string) {
		j.waitServed(who, slices.Collect(maps.Keys(shares)))
		replies := j.drivers[who].send(j.t.Context(), requests)
		count := map[string]int{}
		for _, r := range replies {
			if r.err != nil {
				j.t.Fatalf("request failed during the split: %v", r.err)
			}
			count[r.backend]++
		}
		total := 0
		for _, s := range shares {
			total += s
		}
		for b, s := range shares {
			want := 100 * float64(s) / float64(total)
			got := 100 * float64(count[b]) / float64(len(replies))
			if math.Abs(got-want) > tolerance {
				j.t.Errorf("backend %s answered %.1f%% of %d requests, want %.0f%% ± %.0f", b, got, len(replies), want, tolerance)
			}
		}
		j.t.Logf("split over %d requests: %v", len(replies), count)
		j.checkClient(who)
	}}
}

// switchWithoutFailure commits cfg while the client sends requests, and expects
// none of them to fail on the way to backends (make before break, R15).
func switchWithoutFailure(cfg config, backends ...string) step {
	inner := apply(cfg)
	return step{what: "while traffic flows, commit " + cfg.String(), do: func(j *journeyRun, who string) {
		d := j.drivers[who]
		ctx, cancel := context.WithCancel(j.t.Context())
		var failures []string
		sent := 0
		var wg sync.WaitGroup
		wg.Go(func() {
			for ctx.Err() == nil {
				for _, r := range d.send(ctx, 1) {
					sent++
					if r.err != nil && ctx.Err() == nil {
						failures = append(failures, r.err.Error())
					}
				}
				time.Sleep(100 * time.Microsecond) // leave the client room to work
			}
		})
		time.Sleep(50 * time.Millisecond) // traffic flows before the commit
		inner.do(j, who)
		j.waitServed(who, backends)
		time.Sleep(50 * time.Millisecond) // and after the switch
		cancel()
		wg.Wait()
		if len(failures) > 0 {
			j.t.Errorf("%d of %d requests failed during the switch; first: %s", len(failures), sent, failures[0])
		}
		j.t.Logf("%d requests during the switch, none failed", sent)
		j.checkClient(who)
	}}
}

// expectNACK expects the client to reject the newest response of typeURL, and the
// server to record it: the client's message (naming the resource), the version it
// still holds (R5, SotW), and no resend of what was rejected (R6).
func expectNACK(typeURL, name string) step {
	return step{what: "the client NACKs " + name, do: func(j *journeyRun, who string) {
		node := j.nodeID(who)
		st := j.srv.status(j.t, node, func(s stream.StreamStatus) bool {
			ts := typeStatus(s, typeURL)
			return ts.LastNACK != nil && ts.LastNACK.Nonce == ts.NonceSent
		})
		ts := typeStatus(st, typeURL)
		n := ts.LastNACK
		j.t.Logf("NACK recorded: code %d, message %q", n.Code, n.Message)
		if !strings.Contains(n.Message, name) {
			j.t.Errorf("the NACK message %q does not name the rejected resource %q", n.Message, name)
		}
		if st.Variant == "sotw" {
			if n.Version == "" || n.Version != ts.VersionACKed || n.Version == n.RejectedVersion {
				j.t.Errorf("R5: the NACK says the client holds %q (rejected %q, last ACKed %q)", n.Version, n.RejectedVersion, ts.VersionACKed)
			}
		}
		for _, r := range j.srv.log.quietFor(j.t.Context(), node, 500*time.Millisecond) {
			if r.typeURL == typeURL {
				j.t.Errorf("R6: the server sent %s again after the NACK (version %s, %v)", typeURL, r.version, r.names)
			}
		}
	}}
}

// restartServer stops the server, checks that traffic still flows on the last
// configuration while it is down, and starts it again on the same address over
// the same store.
func restartServer() step {
	return step{what: "restart the server", do: func(j *journeyRun, _ string) {
		for who := range j.drivers {
			st := j.srv.status(j.t, j.nodeID(who), nil)
			j.held[who] = map[string]string{}
			for _, ts := range st.Types {
				j.held[who][ts.TypeURL] = ts.VersionACKed
			}
		}
		j.srv.stop()
		for who := range j.drivers {
			j.waitServed(who, j.current[who].backendsServed())
		}
		j.srv.start(j.t)
	}}
}

// backendsServed lists the backends the configuration sends traffic to.
func (c config) backendsServed() []string {
	var out []string
	for cl, w := range c.weights {
		if w > 0 {
			out = append(out, c.clusters[cl]...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// expectReconnected expects the client to open a new stream to the restarted
// server, presenting the versions it holds (SotW) or its resources' versions
// (delta), and the server to send nothing new, since nothing changed. Over delta
// nothing at all is sent (D3). Over SotW, a full-state type subscribed as a
// whole (Envoy's LDS and CDS) is sent nothing (S3); a subscription that names
// resources (grpc-go's every type, Envoy's RDS and EDS) is answered again, at
// the version the client holds, which is its content's digest: the same content
// (S6).
func expectReconnected() step {
	return step{what: "the client reconnects and is sent nothing it does not hold", do: func(j *journeyRun, who string) {
		node := j.nodeID(who)
		gen := j.srv.generation
		st := j.srv.status(j.t, node, func(s stream.StreamStatus) bool {
			for _, u := range []string{lds, rds, cds, eds} {
				ts := typeStatus(s, u)
				if ts.TypeURL == "" {
					return false
				}
				if s.Variant == "sotw" && ts.VersionACKed != j.held[who][u] {
					return false
				}
			}
			return true
		})
		time.Sleep(500 * time.Millisecond)
		answered := map[string]bool{}
		for _, r := range j.srv.log.responsesTo(node, time.Time{}) {
			if r.generation != gen {
				continue
			}
			held := j.held[who][r.typeURL]
			switch {
			case st.Variant != "sotw" && (r.typeURL == eds || r.typeURL == rds):
				// D9: what a cluster or listener uses is sent again; the driver's
				// check below proves it holds the content it held.
				answered[r.typeURL] = true
			case st.Variant != "sotw" || resumedSilently(typeStatus(st, r.typeURL)):
				j.t.Errorf("after the restart the server sent %s %v (version %s) to a client that held it", shortType(r.typeURL), r.names, r.version)
			case r.version != held:
				j.t.Errorf("S6: after the restart the server sent %s %v at version %s; the client held %s and nothing changed", shortType(r.typeURL), r.names, r.version, held)
			default:
				answered[r.typeURL] = true
			}
		}
		if st.Variant == "sotw" {
			for _, ts := range st.Types {
				if !resumedSilently(ts) && !answered[ts.TypeURL] {
					j.t.Errorf("S6: after the restart %s %v, subscribed by name, was not answered", shortType(ts.TypeURL), ts.Names)
				}
			}
		}
		j.t.Logf("reconnected as stream %d (%s); answered again: %v", st.ID, st.Variant, shortTypes(slices.Sorted(maps.Keys(answered))))
		j.drivers[who].check(j.t)
	}}
}

// resumedSilently reports whether a SotW type is one whose current version, on a
// new stream, is answered with nothing: a full-state type subscribed as a whole
// (S3, S6).
func resumedSilently(ts stream.TypeStatus) bool {
	return protocol.FullState(ts.TypeURL) && ts.Wildcard && len(ts.Names) == 0
}

// expectResubscribedAtOnce checks how the client came back after the restart
// (P5): before any response, one request per type, each presenting the version
// the client held and no nonce.
func expectResubscribedAtOnce() step {
	return step{what: "the client resubscribed to every type at once, with the versions it held", do: func(j *journeyRun, who string) {
		var first []wireRequest
		for _, r := range j.srv.log.requestsOf(j.nodeID(who)) {
			if r.generation == j.srv.generation && len(first) < 4 {
				first = append(first, r)
			}
		}
		var types []string
		for _, r := range first {
			types = append(types, shortType(r.typeURL()))
			if r.sotw.GetVersionInfo() != j.held[who][r.typeURL()] || r.sotw.GetResponseNonce() != "" {
				j.t.Errorf("on the new stream the client asked for %s with version %q and nonce %q; it held %q",
					shortType(r.typeURL()), r.sotw.GetVersionInfo(), r.sotw.GetResponseNonce(), j.held[who][r.typeURL()])
			}
		}
		slices.Sort(types)
		if join(types) != "[CDS EDS LDS RDS]" {
			j.t.Errorf("the first requests of the new stream were for %v; want one of each type", types)
		}
		j.t.Logf("on the new stream grpc-go asked for %v at once", types)
	}}
}

// expectNamedSubscriptions checks the client subscribed as grpc-go does (P4):
// LDS, then RDS, then CDS, then EDS, each by explicit name, with the Node on the
// first request only.
func expectNamedSubscriptions() step {
	return step{what: "the client subscribed LDS → RDS → CDS → EDS by name", do: func(j *journeyRun, who string) {
		reqs := j.srv.log.requestsOf(j.nodeID(who))
		var order []string
		firstCall := -1
		for i, r := range reqs {
			if firstCall == -1 {
				firstCall = r.call
			}
			if r.call != firstCall {
				break
			}
			if r.hasNode != (i == 0) {
				j.t.Errorf("request %d of the stream carries the Node: %v; want the first only (R2)", i+1, r.hasNode)
			}
			if !slices.Contains(order, r.typeURL()) {
				order = append(order, r.typeURL())
			}
			names := r.sotw.GetResourceNames()
			if r.delta != nil {
				names = r.delta.GetResourceNamesSubscribe()
				if r.delta.GetResponseNonce() != "" || len(names) == 0 {
					continue // an ACK
				}
			}
			if len(names) == 0 || slices.Contains(names, "*") {
				j.t.Errorf("request %d subscribes %s with %v: want explicit names (R12)", i+1, shortType(r.typeURL()), names)
			}
		}
		if got := shortTypes(order); got != "[LDS RDS CDS EDS]" {
			j.t.Errorf("the client subscribed in the order %s, want [LDS RDS CDS EDS]", got)
		}
	}}
}

// expectOnlyChanged checks that the responses of typeURL since the last commit
// carried only names (S2: the others were left out, and not deleted).
func expectOnlyChanged(typeURL string, names ...string) step {
	return step{what: fmt.Sprintf("only %v was sent", names), do: func(j *journeyRun, who string) {
		rs := j.responsesSinceApply(who, typeURL)
		if len(rs) == 0 {
			j.t.Errorf("no %s response since the commit", shortType(typeURL))
		}
		for _, r := range rs {
			if !slices.Equal(slices.Sorted(slices.Values(r.names)), names) {
				j.t.Errorf("a %s response since the commit carried %v, want %v", shortType(typeURL), r.names, names)
			}
		}
	}}
}

// expectUnchangedSinceApply checks that nothing of types was sent since the last
// commit, which did not change them (R3, R6).
func expectUnchangedSinceApply(types ...string) step {
	return step{what: "the other types were not sent", do: func(j *journeyRun, who string) {
		for _, u := range types {
			for _, r := range j.responsesSinceApply(who, u) {
				j.t.Errorf("%s %v was sent (version %s) though the commit did not change it", shortType(u), r.names, r.version)
			}
		}
	}}
}

// expectAnswered checks that a response of typeURL carried name since the last
// commit, which changed what uses it but not it (R16).
func expectAnswered(typeURL, name string) step {
	return step{what: fmt.Sprintf("%s %s was answered", shortType(typeURL), name), do: func(j *journeyRun, who string) {
		deadline := time.Now().Add(waitFor)
		for time.Now().Before(deadline) {
			for _, r := range j.responsesSinceApply(who, typeURL) {
				if slices.Contains(r.names, name) {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		j.t.Errorf("R16: no %s response carried %s after its user was updated", shortType(typeURL), name)
	}}
}

// expectGone checks that the client no longer holds name of typeURL: it
// unsubscribed (S4, D6), or the server deleted it from the full state (S1) or
// announced its removal (D7).
func expectGone(typeURL, name string) step {
	return step{what: fmt.Sprintf("%s %s is gone", shortType(typeURL), name), do: func(j *journeyRun, who string) {
		node := j.nodeID(who)
		j.srv.status(j.t, node, func(s stream.StreamStatus) bool {
			ts := typeStatus(s, typeURL)
			if !ts.Wildcard {
				return !slices.Contains(ts.Names, name)
			}
			rs := j.responsesSinceApply(who, typeURL)
			for _, r := range rs {
				if slices.Contains(r.removed, name) {
					return true // delta: announced as removed
				}
			}
			if s.Variant == "sotw" && len(rs) > 0 {
				return !slices.Contains(rs[len(rs)-1].names, name) // the full state without it
			}
			return false
		})
	}}
}

func (j *journeyRun) responsesSinceApply(who, typeURL string) []wireResponse {
	var out []wireResponse
	for _, r := range j.srv.log.responsesTo(j.nodeID(who), j.applied[who]) {
		if r.typeURL == typeURL {
			out = append(out, r)
		}
	}
	return out
}
