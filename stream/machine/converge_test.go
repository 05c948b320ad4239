package machine

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// FuzzConverge checks that a client ends up holding what the store serves it.
//
// FuzzSotW and FuzzDelta send random requests and check each response on its
// own. Here the requests come from models of real clients (Envoy over SotW and
// delta ADS, grpc-go over SotW ADS) that follow the references of what they hold
// and ACK everything, over a simulated network: two FIFO queues whose deliveries,
// the store's commits, the client's own subscription changes and reconnections
// interleave as the input says. When the input is exhausted nothing changes any
// more; the network is drained until the server has nothing left to send, and
// then the client must hold exactly what the store serves for its subscriptions,
// with nothing still warming. A path that strands a client fails here.
//
// The first input byte picks the client model; LEANXDS_CONVERGE_CLIENT=envoy,
// grpc, delta or delta-legacy pins it (the byte is then read but ignored).
// LEANXDS_FUZZ_TRACE=1 logs every event, request and response.
func FuzzConverge(f *testing.F) {
	f.Add([]byte{0, 10, 0, 3, 0, 0, 10, 2, 0, 1, 0, 11, 1, 0, 0, 10, 3, 0, 0, 0, 3, 3, 4, 4, 4, 4, 4, 4})
	f.Add([]byte{1, 10, 2, 0, 0, 3, 12, 3, 0, 1, 10, 0, 0, 0, 11, 1, 0, 0, 3, 4, 4, 3, 4, 4, 3, 4, 4, 15, 3, 4, 4, 4})
	f.Add([]byte{2, 10, 0, 0, 0, 10, 2, 0, 0, 0, 3, 4, 4, 15, 10, 1, 1, 0, 3, 4, 4, 3, 4, 4})
	f.Add([]byte{3, 10, 2, 1, 0, 0, 10, 3, 1, 1, 0, 3, 4, 4, 4, 15, 3, 4, 4, 10, 4, 1, 3, 3, 4, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		model := convModel(in.next(len(convModelNames)))
		if pinned, ok := convPinned(t); ok {
			model = pinned
		}
		run := newConvRun(t, in, model)
		run.play()
		if failure := run.converge(); failure != "" {
			t.Fatal(failure)
		}
	})
}

// convModel is the kind of client a FuzzConverge input drives.
type convModel int

const (
	// convEnvoy is Envoy over SotW ADS: wildcard CDS and LDS (legacy: the first
	// request names nothing), RDS and EDS by the names what it holds refers to.
	convEnvoy convModel = iota
	// convGRPC is grpc-go over SotW ADS: everything by name, one level at a time (P4).
	convGRPC
	// convDelta is Envoy over delta ADS, subscribing to CDS and LDS with "*".
	convDelta
	// convDeltaLegacy is convDelta with legacy wildcards: first CDS and LDS
	// requests with both lists empty (D4).
	convDeltaLegacy
)

var convModelNames = []string{"envoy", "grpc", "delta", "delta-legacy"}

func (m convModel) String() string { return convModelNames[m] }

func (m convModel) delta() bool { return m == convDelta || m == convDeltaLegacy }

// convPinned reads LEANXDS_CONVERGE_CLIENT.
func convPinned(t *testing.T) (convModel, bool) {
	name := os.Getenv("LEANXDS_CONVERGE_CLIENT")
	if name == "" {
		return 0, false
	}
	i := slices.Index(convModelNames, name)
	if i < 0 {
		t.Fatalf("LEANXDS_CONVERGE_CLIENT=%q: want one of %v", name, convModelNames)
	}
	return convModel(i), true
}

const (
	convScope = "s"
	// convMaxSteps bounds the events one input plays.
	convMaxSteps = 300
	// convMaxSettle bounds the deliveries and wakes that settling may take.
	convMaxSettle = 200
)

// Small pools of names, so that references collide: several listeners share a
// route, several clusters an EDS service, and deletions leave references dangling.
var (
	convClusters  = []string{"c1", "c2", "c3"}
	convServices  = []string{"c1", "c2", "c3", "e4"}
	convListeners = []string{"l1", "l2", "l3"}
	convRoutes    = []string{"r1", "r2", "r3"}
	// convTargets are the listeners a gRPC client switches between.
	convTargets = []string{"l1", "l2"}
	// convTypes are the types the clients use, in push order (R15).
	convTypes = []string{protocol.TypeCluster, protocol.TypeEndpoint, protocol.TypeListener, protocol.TypeRoute}
)

// convRun is one input's play: the store, the server's state machine for the
// current stream, the client, and the two queues between them.
type convRun struct {
	t     *testing.T
	in    *fuzzInput
	model convModel
	st    *store.Store

	// streams counts the streams opened, for the trace.
	streams int
	sotw    *SotW
	delta   *Delta
	// watched are the types the stream's watcher follows: those requested on
	// the stream, and CDS once EDS is (P2), as the handler's watchType does.
	watched map[string]bool
	// signalled: a commit changed a watched type since the server last woke.
	signalled bool
	// violations are protocol rules the server broke on the way, whatever the
	// end state.
	violations []string

	client *convClient
	// toServer and toClient are the requests and responses in flight.
	toServer []convRequest
	toClient []*Response
}

// convRequest is a request of either variant.
type convRequest struct {
	sotw  *discoveryv3.DiscoveryRequest
	delta *discoveryv3.DeltaDiscoveryRequest
}

func (r convRequest) typeURL() string {
	if r.sotw != nil {
		return r.sotw.GetTypeUrl()
	}
	return r.delta.GetTypeUrl()
}

func (r convRequest) String() string {
	if r.sotw != nil {
		q := r.sotw
		return fmt.Sprintf("%s names=%v version=%s nonce=%q", protocol.Short(q.GetTypeUrl()), q.GetResourceNames(), convShort(q.GetVersionInfo()), q.GetResponseNonce())
	}
	q := r.delta
	s := fmt.Sprintf("%s sub=%v unsub=%v nonce=%q", protocol.Short(q.GetTypeUrl()), q.GetResourceNamesSubscribe(), q.GetResourceNamesUnsubscribe(), q.GetResponseNonce())
	if iv := q.GetInitialResourceVersions(); len(iv) > 0 {
		var held []string
		for _, n := range slices.Sorted(maps.Keys(iv)) {
			held = append(held, n+"@"+convShort(iv[n]))
		}
		s += fmt.Sprintf(" initial=%v", held)
	}
	return s
}

func convResponseString(r *Response) string {
	s := fmt.Sprintf("%s nonce=%s version=%s resources=%s", protocol.Short(r.TypeURL), r.Nonce, convShort(r.Version), convEntries(r.Resources))
	if len(r.Removed) > 0 {
		s += fmt.Sprintf(" removed=%v", r.Removed)
	}
	return s
}

func convEntries(es []*store.Entry) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name+"@"+convShort(e.Version))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// convShort shortens a version for the trace.
func convShort(v string) string {
	if len(v) > 6 {
		return v[:6]
	}
	return v
}

func newConvRun(t *testing.T, in *fuzzInput, model convModel) *convRun {
	r := &convRun{t: t, in: in, model: model, st: store.New()}
	r.client = newConvClient(r, model)
	r.logf("client %s", model)
	r.connect()
	return r
}

func (r *convRun) logf(format string, args ...any) {
	if fuzzTrace {
		r.t.Helper()
		r.t.Logf(format, args...)
	}
}

// connect opens a new stream on the same store and lets the client (re)subscribe.
func (r *convRun) connect() {
	r.streams++
	node := &corev3.Node{Id: "converge"}
	r.sotw, r.delta = nil, nil
	if r.model.delta() {
		r.delta = NewDelta(Config{Scope: convScope, Node: node})
	} else {
		r.sotw = NewSotW(Config{Scope: convScope, Node: node})
	}
	r.watched = map[string]bool{}
	r.signalled = false
	r.send(r.client.connected()...)
}

// send queues the client's requests.
func (r *convRun) send(reqs ...convRequest) {
	for _, q := range reqs {
		r.logf("  client sends %s", q)
		r.toServer = append(r.toServer, q)
	}
}

// play runs the input's events.
func (r *convRun) play() {
	in := r.in
	for step := 0; step < convMaxSteps && !in.done(); step++ {
		switch op := in.next(16); {
		case op < 4:
			n := 1 + in.next(3) // one, two, or (3) every request in flight
			if n == 3 {
				n = len(r.toServer)
			}
			r.deliverRequests(n)
		case op < 10:
			r.deliverResponse()
		case op < 13:
			r.commit()
		case op == 13:
			r.wake()
		case op == 14:
			r.logf("client changes its subscriptions")
			r.send(r.client.change()...)
		default:
			r.logf("reconnect: %d requests and %d responses in flight lost", len(r.toServer), len(r.toClient))
			r.toServer, r.toClient = nil, nil
			r.connect()
		}
	}
}

// deliverRequests hands the server the next n requests in flight, then computes
// its responses once, as the handler does with every request already received.
func (r *convRun) deliverRequests(n int) {
	n = min(n, len(r.toServer))
	if n == 0 {
		return
	}
	r.logf("server receives %d request(s) on stream %d", n, r.streams)
	for _, q := range r.toServer[:n] {
		r.logf("  server gets %s", q)
		r.watch(q.typeURL())
		var err error
		if q.sotw != nil {
			ts := r.sotw.state(q.typeURL()) // owe may have made it before any request
			first := ts == nil || !ts.sub.requested
			owedAll := ts != nil && ts.owed.all
			_, err = r.sotw.Receive(q.sotw, time.Time{}, r.st.View())
			if ts := r.sotw.state(q.typeURL()); err == nil && first && ts.holds.table != nil && ts.holds.nonce == "" {
				if !r.client.holdsServed(ts) {
					r.violate("S6: the server took version %s of %s as current on a new stream, but the client does not hold that", convShort(ts.holds.version), protocol.Short(ts.typeURL))
				}
				if owedAll && !ts.owed.all {
					r.violate("R16: the server took version %s of %s as current on a new stream and forgot that it owed every resource of it", convShort(ts.holds.version), protocol.Short(ts.typeURL))
				}
			}
		} else {
			_, err = r.delta.Receive(q.delta, time.Time{}, r.st.View())
		}
		if err != nil {
			r.t.Fatalf("receive %s: %v", q, err)
		}
	}
	r.toServer = r.toServer[n:]
	r.respond()
}

func (r *convRun) watch(typeURL string) {
	r.watched[typeURL] = true
	if typeURL == protocol.TypeEndpoint {
		r.watched[protocol.TypeCluster] = true // P2: empty assignments follow the clusters
	}
}

// respond computes the server's responses and queues them.
func (r *convRun) respond() int {
	var resps []*Response
	if r.sotw != nil {
		resps = r.sotw.Responses(r.st.View())
	} else {
		resps = r.delta.Responses(r.st.View())
	}
	for _, resp := range resps {
		r.logf("  server sends %s", convResponseString(resp))
	}
	r.toClient = append(r.toClient, resps...)
	return len(resps)
}

// status is the machine's newest status snapshot.
func (r *convRun) status() *Status {
	if r.sotw != nil {
		return r.sotw.Status()
	}
	return r.delta.Status()
}

// wake is the handler waking on its watcher: only after a commit to a watched type.
func (r *convRun) wake() {
	if !r.signalled {
		return
	}
	r.signalled = false
	r.logf("server wakes")
	r.respond()
}

func (r *convRun) deliverResponse() {
	if len(r.toClient) == 0 {
		return
	}
	resp := r.toClient[0]
	r.toClient = r.toClient[1:]
	r.logf("client receives %s", convResponseString(resp))
	r.send(r.client.receive(resp)...)
}

// convChange is one change of a commit, with what the trace says of it.
type convChange struct {
	change        store.Change
	typeURL, name string
	what          string
}

// commit applies a random commit to the store: one to three changes over the
// small name pools, or a bulk change of many clusters at once.
func (r *convRun) commit() {
	var changes []convChange
	switch n := r.in.next(8); {
	case n == 7:
		changes = r.bulkChanges()
	default:
		seen := map[string]bool{}
		for range 1 + n/3 { // one, two or three changes
			c := r.change()
			if key := c.typeURL + " " + c.name; !seen[key] {
				seen[key] = true // a commit sets or deletes a name once
				changes = append(changes, c)
			}
		}
	}
	var (
		batch []store.Change
		whats []string
	)
	for _, c := range changes {
		batch = append(batch, c.change)
		whats = append(whats, c.what)
	}
	what := strings.Join(whats, "; ")
	if len(changes) > 3 {
		what = fmt.Sprintf("%s (%d changes)", whats[0], len(changes))
	}
	res, err := r.st.Commit(batch...)
	if err != nil {
		r.t.Fatalf("commit %s: %v", what, err)
	}
	if !res.Changed() {
		r.logf("commit %s: no change", what)
		return
	}
	r.logf("commit %s", what)
	for _, c := range changes {
		if r.watched[c.typeURL] {
			r.signalled = true
		}
	}
}

// change returns one random change over the small name pools.
func (r *convRun) change() convChange {
	in := r.in
	pick := func(names []string) string { return names[in.next(len(names))] }
	clusters := func() []string {
		var cs []string
		for range in.next(3) {
			cs = append(cs, pick(convClusters))
		}
		slices.Sort(cs)
		return slices.Compact(cs)
	}
	set := func(m proto.Message, typeURL, name, what string, args ...any) convChange {
		return convChange{store.Set(convScope, m), typeURL, name, "set " + fmt.Sprintf(what, args...)}
	}
	switch kind := in.next(5); kind {
	case 0:
		name := pick(convClusters)
		switch v := in.next(5); v {
		case 0, 1:
			return set(xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(v+1)*time.Second)), protocol.TypeCluster, name,
				"cluster %s (EDS %s over ADS, timeout %ds)", name, name, v+1)
		case 2:
			svc := pick(convServices)
			return set(xdstest.Cluster(name, xdstest.WithServiceName(svc)), protocol.TypeCluster, name, "cluster %s (EDS %s over ADS)", name, svc)
		case 3:
			return set(convPathCluster(name), protocol.TypeCluster, name, "cluster %s (EDS from a file, not over ADS)", name)
		default:
			return set(xdstest.StaticCluster(name, "10.1.0.1:80"), protocol.TypeCluster, name, "cluster %s (static)", name)
		}
	case 1:
		svc := pick(convServices)
		if v := in.next(4); v < 3 {
			return set(xdstest.Endpoints(svc, fmt.Sprintf("10.0.0.%d:80", v+1)), protocol.TypeEndpoint, svc, "endpoints %s (10.0.0.%d)", svc, v+1)
		}
		return set(xdstest.Endpoints(svc), protocol.TypeEndpoint, svc, "endpoints %s (none)", svc)
	case 2:
		name := pick(convListeners)
		switch in.next(4) {
		case 0:
			route := pick(convRoutes)
			return set(xdstest.Listener(name, 8080, route), protocol.TypeListener, name, "listener %s (RDS %s)", name, route)
		case 1:
			route := pick(convRoutes)
			return set(xdstest.APIListener(name, route), protocol.TypeListener, name, "api listener %s (RDS %s)", name, route)
		default:
			cs := clusters()
			return set(convInlineListener(name, cs...), protocol.TypeListener, name, "api listener %s (inline route to %v)", name, cs)
		}
	case 3:
		name := pick(convRoutes)
		cs := clusters()
		return set(xdstest.SimpleRoute(name, cs...), protocol.TypeRoute, name, "route %s (to %v)", name, cs)
	default:
		typeURL := convTypes[in.next(len(convTypes))]
		var name string
		switch typeURL {
		case protocol.TypeCluster:
			name = pick(convClusters)
		case protocol.TypeEndpoint:
			name = pick(convServices)
		case protocol.TypeListener:
			name = pick(convListeners)
		default:
			name = pick(convRoutes)
		}
		return convChange{store.Delete(convScope, typeURL, name), typeURL, name, fmt.Sprintf("delete %s %s", protocol.Short(typeURL), name)}
	}
}

// convBulk are clusters changed all at once: more than manyForced, so that the
// paths for many owed answers (owed.all instead of one name each) are taken.
var convBulk = func() []string {
	names := make([]string, manyForced+2)
	for i := range names {
		names[i] = fmt.Sprintf("b%02d", i)
	}
	return names
}()

// bulkChanges returns a change of every bulk cluster (or their endpoints), or
// the route r3 routing to all of them, so that a gRPC client asks for them too.
func (r *convRun) bulkChanges() []convChange {
	var out []convChange
	switch v := r.in.next(6); v {
	case 0, 1:
		for _, n := range convBulk {
			out = append(out, convChange{store.Set(convScope, xdstest.Cluster(n, xdstest.WithConnectTimeout(time.Duration(v+1)*time.Second))), protocol.TypeCluster, n,
				fmt.Sprintf("set bulk clusters b00-b%02d (timeout %ds)", len(convBulk)-1, v+1)})
		}
	case 2:
		for _, n := range convBulk {
			out = append(out, convChange{store.Delete(convScope, protocol.TypeCluster, n), protocol.TypeCluster, n,
				fmt.Sprintf("delete bulk clusters b00-b%02d", len(convBulk)-1)})
		}
	case 3:
		a := r.in.next(3) + 1
		for _, n := range convBulk {
			out = append(out, convChange{store.Set(convScope, xdstest.Endpoints(n, fmt.Sprintf("10.2.0.%d:80", a))), protocol.TypeEndpoint, n,
				fmt.Sprintf("set bulk endpoints b00-b%02d (10.2.0.%d)", len(convBulk)-1, a)})
		}
	case 4:
		for _, n := range convBulk {
			out = append(out, convChange{store.Delete(convScope, protocol.TypeEndpoint, n), protocol.TypeEndpoint, n,
				fmt.Sprintf("delete bulk endpoints b00-b%02d", len(convBulk)-1)})
		}
	default:
		out = append(out, convChange{store.Set(convScope, xdstest.SimpleRoute("r3", convBulk...)), protocol.TypeRoute, "r3",
			fmt.Sprintf("set route r3 (to b00-b%02d)", len(convBulk)-1)})
	}
	return out
}

// convPathCluster is an EDS cluster whose endpoints come from a file: its client
// never asks the server for them.
func convPathCluster(name string) *clusterv3.Cluster {
	c := xdstest.Cluster(name)
	c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{
			PathConfigSource: &corev3.PathConfigSource{Path: "/etc/envoy/eds/" + name + ".yaml"},
		},
	}
	return c
}

// convInlineListener is an api_listener (a gRPC client's) whose route
// configuration is inline, routing straight to clusters: no RDS.
func convInlineListener(name string, clusters ...string) *listenerv3.Listener {
	l := xdstest.APIListener(name, "unused")
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(&hcm); err != nil {
		panic(err)
	}
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: xdstest.SimpleRoute(name+"-inline", clusters...)}
	l.ApiListener.ApiListener = xdstest.Any(&hcm)
	return l
}

// converge settles the network and checks what the client holds. It returns
// what went wrong, "" if nothing.
func (r *convRun) converge() (failure string) {
	if len(r.violations) > 0 {
		return fmt.Sprintf("converge (%s): %s (LEANXDS_FUZZ_TRACE=1 for the trace)", r.model, strings.Join(r.violations, "; "))
	}
	if failure := r.settle(); failure != "" {
		return fmt.Sprintf("converge (%s): %s (LEANXDS_FUZZ_TRACE=1 for the trace)", r.model, failure)
	}
	return r.check()
}

// violate records a rule the server broke.
func (r *convRun) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.logf("  VIOLATION %s", msg)
	r.violations = append(r.violations, msg)
}

// settle drains the network: requests first, then responses one at a time, then
// what a commit signalled, until nothing is in flight and the server, asked
// once more, has nothing to send.
func (r *convRun) settle() (failure string) {
	r.logf("settle")
	for n := 0; ; n++ {
		if n > convMaxSettle {
			return fmt.Sprintf("did not settle in %d deliveries: %d requests and %d responses still in flight",
				convMaxSettle, len(r.toServer), len(r.toClient))
		}
		switch {
		case len(r.toServer) > 0:
			r.deliverRequests(len(r.toServer))
		case len(r.toClient) > 0:
			r.deliverResponse()
		case r.signalled:
			r.wake()
		default:
			// Nothing is in flight and nothing signalled: the real handler would
			// sleep now. Anything Responses still finds was held back until an
			// event that will not come.
			r.logf("idle: server asked once more")
			if r.respond() > 0 {
				return fmt.Sprintf("the server sends %s only when woken with nothing new; the handler would never wake, the client is stranded",
					convResponseString(r.toClient[0]))
			}
			// R20: a client that answered everything, owed nothing, runs the
			// revision the server last read.
			st := r.status()
			if sd := st.Standing(r.st.View().Revision()); !sd.ACKed || sd.NACK != nil || !sd.Answered {
				return fmt.Sprintf("settled, yet not ACKed for revision %d (R20): %+v (view %d, ACKed %d)",
					r.st.View().Revision(), sd, st.ViewRevision(), st.ACKedRevision())
			}
			return ""
		}
	}
}

// convDiff is one way the client's end state differs from what it is owed.
type convDiff struct {
	typeURL, name string
	kind          convDiffKind
	text          string
}

type convDiffKind int

const (
	diffSubscription convDiffKind = iota + 1 // the client's or the server's subscription is off
	diffMissing                              // a served resource is not held
	diffStale                                // a served resource is held at another version
	diffDeleted                              // an LDS/CDS resource is held though the store has none
	diffExtra                                // held though not subscribed
	diffNotRemoved                           // delta: held though gone, and no removal came (D7)
	diffP2                                   // an EDS service a cluster uses lacks its explicit empty assignment
	diffWarming                              // a cluster or listener still warms (R16)
)

// check compares what the client holds with what the store serves it. It
// returns the differences, "" if none.
func (r *convRun) check() (failure string) {
	c := r.client
	v := r.st.View()
	var diffs []convDiff
	add := func(typeURL, name string, kind convDiffKind, format string, args ...any) {
		diffs = append(diffs, convDiff{typeURL, name, kind, protocol.Short(typeURL) + " " + fmt.Sprintf(format, args...)})
	}
	for _, typeURL := range convTypes {
		names, wildcard := c.wants(typeURL)
		sub := c.subs[typeURL]
		// The client asked for what it holds refers to.
		switch {
		case !sub.requested && (wildcard || len(names) > 0):
			add(typeURL, "", diffSubscription, "the client wants %s but never asked on this stream", convSubString(names, wildcard))
		case sub.requested && (sub.wildcard != wildcard || !slices.Equal(sub.names, names)):
			add(typeURL, "", diffSubscription, "the client asked for %s but wants %s", convSubString(sub.names, sub.wildcard), convSubString(names, wildcard))
		}
		// The server agrees on the subscription.
		if ts := r.machine().state(typeURL); ts != nil && (sub.requested || ts.sub.requested) {
			if ts.sub.wildcard != sub.wildcard || !slices.Equal(ts.sub.sortedNames(), sub.names) {
				add(typeURL, "", diffSubscription, "the server has the subscription %s, the client %s", convSubString(ts.sub.sortedNames(), ts.sub.wildcard), convSubString(sub.names, sub.wildcard))
			}
		}

		held := c.held[typeURL]
		table := v.Table(convScope, typeURL)
		served := map[string]*store.Entry{}
		if wildcard {
			for e := range table.All() {
				served[e.Name] = e
			}
		} else {
			for _, n := range names {
				if e := table.Get(n); e != nil {
					served[e.Name] = e
				}
			}
		}
		for _, n := range slices.Sorted(maps.Keys(served)) {
			if h, ok := held[n]; !ok {
				add(typeURL, n, diffMissing, "%s: missing; the store serves %s", n, convShort(served[n].Version))
			} else if h.version != served[n].Version {
				add(typeURL, n, diffStale, "%s: held at %s, the store serves %s (stale)", n, convShort(h.version), convShort(served[n].Version))
			}
		}
		for _, n := range slices.Sorted(maps.Keys(held)) {
			if served[n] != nil {
				continue
			}
			h := held[n]
			switch {
			case !wildcard && !slices.Contains(names, n):
				add(typeURL, n, diffExtra, "%s: held at %s but not subscribed", n, convShort(h.version))
			case protocol.FullState(typeURL):
				add(typeURL, n, diffDeleted, "%s: held at %s, the store has none (deleted)", n, convShort(h.version))
			case typeURL == protocol.TypeEndpoint && c.clusterUses(n):
				// P2: checked below for every such name.
			case r.model.delta():
				add(typeURL, n, diffNotRemoved, "%s: held at %s, the store has none and no removal came (D7)", n, convShort(h.version))
			default:
				// S2: a SotW client is never told that an RDS or EDS resource is gone.
			}
		}
		if typeURL == protocol.TypeEndpoint {
			for _, n := range names {
				if served[n] != nil || !c.clusterUses(n) {
					continue
				}
				// P2: a cluster's missing assignment is an explicit empty one.
				h, ok := held[n]
				var cla endpointv3.ClusterLoadAssignment
				switch {
				case !ok:
					add(typeURL, n, diffP2, "%s: missing; a cluster uses it and the store has none, so the explicit empty assignment is owed (P2)", n)
				case proto.Unmarshal(h.body, &cla) != nil || cla.GetClusterName() != n || len(cla.GetEndpoints()) > 0:
					add(typeURL, n, diffP2, "%s: held at %s, not the explicit empty assignment a cluster without endpoints gets (P2)", n, convShort(h.version))
				}
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(c.warmingClusters)) {
		add(protocol.TypeCluster, n, diffWarming, "%s: still warming, waiting for EDS %s (R16)", n, c.warmingClusters[n])
	}
	for _, n := range slices.Sorted(maps.Keys(c.warmingListeners)) {
		// A listener whose route the store lacks warms until the store has it:
		// no answer can end that wait (P2 covers endpoints only).
		if route := c.warmingListeners[n]; v.Table(convScope, protocol.TypeRoute).Get(route) != nil {
			add(protocol.TypeListener, n, diffWarming, "%s: still warming, waiting for RDS %s (R16)", n, route)
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	var lines []string
	for _, d := range diffs {
		lines = append(lines, d.text)
	}
	return fmt.Sprintf("converge (%s): after settling, the client does not hold what the store serves it:\n\t%s\n(LEANXDS_FUZZ_TRACE=1 for the trace)",
		r.model, strings.Join(lines, "\n\t"))
}

func (r *convRun) machine() *machine {
	if r.sotw != nil {
		return &r.sotw.machine
	}
	return &r.delta.machine
}

func convSubString(names []string, wildcard bool) string {
	if wildcard {
		return fmt.Sprintf("* %v", names)
	}
	return fmt.Sprintf("%v", names)
}

// convClient models a real client: what it holds, what it asked for, what is
// still warming.
type convClient struct {
	run   *convRun
	model convModel
	// target is the listener a gRPC client asks for.
	target string
	// held are the resources the client holds, by type and name.
	held map[string]map[string]convHeld
	// subs are the client's per-type subscription state.
	subs map[string]*convSub
	// order are the types in the order the client first asked for them; Envoy
	// resubscribes in that order on a new stream.
	order []string
	// warmingClusters are the new or updated clusters waiting for an EDS response
	// carrying their service, by name; warmingListeners those waiting for an RDS
	// response carrying their route (R16). Envoy models only.
	warmingClusters  map[string]string
	warmingListeners map[string]string
}

// convHeld is one resource a client holds.
type convHeld struct {
	version string
	body    []byte
	refs    convRefs
}

// convSub is a client's state of one type.
type convSub struct {
	// requested: the client asked for the type on the current stream.
	requested bool
	// wildcard and names are what the client last asked for on the stream.
	wildcard bool
	names    []string
	// accepted is the version_info of the newest SotW response ACKed, on any
	// stream: a SotW client sends it on reconnecting (S3, P5).
	accepted string
	// nonce is the nonce of the newest response received on the stream.
	nonce string
}

// convRefs is what a client reads in a resource: what it must subscribe to next.
type convRefs struct {
	// route is a listener's RDS route configuration name, fetched over ADS.
	route string
	// inline: the listener's route configuration is inline; clusters are its routes'.
	inline bool
	// clusters are the clusters a route configuration (or an inline one) routes to.
	clusters []string
	// service is a cluster's EDS service name when its endpoints come over ADS.
	service string
}

// convRead reads a resource as a client does, from its body. Unlike the store's
// Refs, a cluster whose endpoints come from elsewhere names no EDS service.
func convRead(typeURL string, body []byte) convRefs {
	var refs convRefs
	switch typeURL {
	case protocol.TypeCluster:
		var c clusterv3.Cluster
		if err := proto.Unmarshal(body, &c); err != nil {
			panic(err)
		}
		if c.GetType() == clusterv3.Cluster_EDS && c.GetEdsClusterConfig().GetEdsConfig().GetAds() != nil {
			refs.service = c.GetEdsClusterConfig().GetServiceName()
			if refs.service == "" {
				refs.service = c.GetName()
			}
		}
	case protocol.TypeListener:
		var l listenerv3.Listener
		if err := proto.Unmarshal(body, &l); err != nil {
			panic(err)
		}
		var hcm hcmv3.HttpConnectionManager
		found := false
		for _, a := range convListenerFilters(&l) {
			if a.MessageIs(&hcm) && a.UnmarshalTo(&hcm) == nil {
				found = true
				break
			}
		}
		if !found {
			break
		}
		if rds := hcm.GetRds(); rds != nil && rds.GetConfigSource().GetAds() != nil {
			refs.route = rds.GetRouteConfigName()
		}
		if rc := hcm.GetRouteConfig(); rc != nil {
			refs.inline = true
			refs.clusters = resources.References(protocol.TypeRoute, rc).Clusters
		}
	case protocol.TypeRoute:
		var rc routev3.RouteConfiguration
		if err := proto.Unmarshal(body, &rc); err != nil {
			panic(err)
		}
		refs.clusters = resources.References(protocol.TypeRoute, &rc).Clusters
	}
	return refs
}

func convListenerFilters(l *listenerv3.Listener) []*anypb.Any {
	var out []*anypb.Any
	if a := l.GetApiListener().GetApiListener(); a != nil {
		out = append(out, a)
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			out = append(out, f.GetTypedConfig())
		}
	}
	return out
}

func newConvClient(r *convRun, model convModel) *convClient {
	c := &convClient{
		run:              r,
		model:            model,
		target:           convTargets[0],
		held:             map[string]map[string]convHeld{},
		subs:             map[string]*convSub{},
		warmingClusters:  map[string]string{},
		warmingListeners: map[string]string{},
	}
	for _, typeURL := range convTypes {
		c.held[typeURL] = map[string]convHeld{}
		c.subs[typeURL] = &convSub{}
	}
	if model == convGRPC {
		c.order = []string{protocol.TypeListener}
	} else {
		// Envoy starts its cluster manager (CDS) before its listener manager (LDS).
		c.order = []string{protocol.TypeCluster, protocol.TypeListener}
	}
	return c
}

// wants derives the client's subscription of typeURL from what it holds.
func (c *convClient) wants(typeURL string) (names []string, wildcard bool) {
	set := map[string]bool{}
	if c.model == convGRPC {
		// P4: one level at a time, each by the names the level above gives.
		l, haveListener := c.held[protocol.TypeListener][c.target]
		switch typeURL {
		case protocol.TypeListener:
			set[c.target] = true
		case protocol.TypeRoute:
			if haveListener && l.refs.route != "" {
				set[l.refs.route] = true
			}
		case protocol.TypeCluster:
			switch {
			case haveListener && l.refs.inline:
				for _, cl := range l.refs.clusters {
					set[cl] = true
				}
			case haveListener && l.refs.route != "":
				if rc, ok := c.held[protocol.TypeRoute][l.refs.route]; ok {
					for _, cl := range rc.refs.clusters {
						set[cl] = true
					}
				}
			}
		case protocol.TypeEndpoint:
			for _, cl := range c.held[protocol.TypeCluster] {
				if cl.refs.service != "" {
					set[cl.refs.service] = true
				}
			}
		}
		return slices.Sorted(maps.Keys(set)), false
	}
	switch typeURL {
	case protocol.TypeCluster, protocol.TypeListener:
		return nil, true
	case protocol.TypeRoute:
		for _, l := range c.held[protocol.TypeListener] {
			if l.refs.route != "" {
				set[l.refs.route] = true
			}
		}
	case protocol.TypeEndpoint:
		for _, cl := range c.held[protocol.TypeCluster] {
			if cl.refs.service != "" {
				set[cl.refs.service] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set)), false
}

// subscribes reports whether the client asked for name of typeURL.
func (c *convClient) subscribes(typeURL, name string) bool {
	s := c.subs[typeURL]
	return s.wildcard || slices.Contains(s.names, name)
}

// holdsServed reports whether the client holds exactly what the server would
// send for the subscription of ts.
func (c *convClient) holdsServed(ts *typeState) bool {
	m := c.run.machine()
	v := c.run.st.View()
	entries := m.subscribed(v, ts, v.Table(convScope, ts.typeURL))
	held := c.held[ts.typeURL]
	if protocol.FullState(ts.typeURL) && len(held) != len(entries) {
		return false
	}
	for _, e := range entries {
		if held[e.Name].version != e.Version {
			return false
		}
	}
	return true
}

// clusterUses reports whether a cluster the client holds gets its endpoints
// over ADS from service.
func (c *convClient) clusterUses(service string) bool {
	for _, cl := range c.held[protocol.TypeCluster] {
		if cl.refs.service == service {
			return true
		}
	}
	return false
}

// prune drops what the client no longer subscribes to, level by level: a
// listener gone takes its route's subscription, a route its clusters, a
// cluster its endpoints.
func (c *convClient) prune() {
	for _, typeURL := range []string{protocol.TypeListener, protocol.TypeRoute, protocol.TypeCluster, protocol.TypeEndpoint} {
		names, wildcard := c.wants(typeURL)
		if wildcard {
			continue
		}
		for n := range c.held[typeURL] {
			if !slices.Contains(names, n) {
				delete(c.held[typeURL], n)
			}
		}
	}
}

// connected is what the client sends on a new stream: every subscription it
// has, with, for SotW, the version it last accepted and no nonce (S3, P5), and
// for delta, what it holds (D3).
func (c *convClient) connected() []convRequest {
	for _, s := range c.subs {
		s.requested, s.nonce, s.names, s.wildcard = false, "", nil, false
	}
	order := slices.Clone(c.order)
	if c.model == convGRPC {
		// P5: grpc-go resubscribes every type at once, in no fixed order.
		for i := len(order) - 1; i > 0; i-- {
			j := c.run.in.next(i + 1)
			order[i], order[j] = order[j], order[i]
		}
	}
	var out []convRequest
	for _, typeURL := range order {
		if q, ok := c.subscribe(typeURL, true); ok {
			out = append(out, q)
		}
	}
	return out
}

// change is the client's own change of subscription: a gRPC client switches
// its target listener; Envoy's subscriptions follow only what it holds.
func (c *convClient) change() []convRequest {
	if c.model != convGRPC {
		return nil
	}
	if c.target == convTargets[0] {
		c.target = convTargets[1]
	} else {
		c.target = convTargets[0]
	}
	c.run.logf("  client targets listener %s", c.target)
	c.prune()
	return c.changes()
}

// changes returns a request for each type whose subscription differs from what
// the client last asked for on the stream, in push order.
func (c *convClient) changes() []convRequest {
	var out []convRequest
	for _, typeURL := range convTypes {
		if q, ok := c.subscribe(typeURL, false); ok {
			out = append(out, q)
		}
	}
	return out
}

// subscribe returns the request that tells the server the client's current
// subscription of typeURL, if it differs from what the stream was told.
func (c *convClient) subscribe(typeURL string, reconnect bool) (convRequest, bool) {
	names, wildcard := c.wants(typeURL)
	s := c.subs[typeURL]
	if !s.requested && !wildcard && len(names) == 0 {
		// Nothing to ask for. (A first SotW request naming nothing would be a
		// legacy wildcard: R11.)
		return convRequest{}, false
	}
	if s.requested && s.wildcard == wildcard && slices.Equal(s.names, names) {
		return convRequest{}, false
	}
	if !slices.Contains(c.order, typeURL) {
		c.order = append(c.order, typeURL)
	}
	var q convRequest
	if c.model.delta() {
		dq := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL}
		switch {
		case !s.requested && wildcard && c.model == convDeltaLegacy:
			// D4: the legacy wildcard is a first request with both lists empty.
		case !s.requested && wildcard:
			dq.ResourceNamesSubscribe = []string{Wildcard}
		default:
			for _, n := range names {
				if !slices.Contains(s.names, n) {
					dq.ResourceNamesSubscribe = append(dq.ResourceNamesSubscribe, n)
				}
			}
			for _, n := range s.names {
				if !slices.Contains(names, n) {
					dq.ResourceNamesUnsubscribe = append(dq.ResourceNamesUnsubscribe, n)
				}
			}
		}
		if reconnect && len(c.held[typeURL]) > 0 {
			// D3: a reconnecting client says what it holds.
			dq.InitialResourceVersions = map[string]string{}
			for n, h := range c.held[typeURL] {
				dq.InitialResourceVersions[n] = h.version
			}
		}
		q.delta = dq
	} else {
		// SotW: the full list (nothing for Envoy's legacy wildcard, R11), the
		// version last accepted and the newest nonce of the type on the stream.
		q.sotw = &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, VersionInfo: s.accepted, ResponseNonce: s.nonce}
	}
	s.requested, s.wildcard, s.names = true, wildcard, names
	return q, true
}

// ack is the client's ACK of r.
func (c *convClient) ack(r *Response) convRequest {
	if c.model.delta() {
		return convRequest{delta: &discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeURL, ResponseNonce: r.Nonce}}
	}
	s := c.subs[r.TypeURL]
	return convRequest{sotw: &discoveryv3.DiscoveryRequest{TypeUrl: r.TypeURL, ResourceNames: s.names, VersionInfo: r.Version, ResponseNonce: r.Nonce}}
}

// receive applies a response as the client would, and returns what the client
// sends in answer: its subscription changes and its ACK.
func (c *convClient) receive(r *Response) []convRequest {
	s := c.subs[r.TypeURL]
	held := c.held[r.TypeURL]
	before := maps.Clone(held)
	s.nonce = r.Nonce
	keep := func(e *store.Entry) {
		held[e.Name] = convHeld{version: e.Version, body: e.Body, refs: convRead(e.TypeURL, e.Body)}
	}
	switch {
	case c.model.delta():
		for _, e := range r.Resources {
			if c.subscribes(r.TypeURL, e.Name) {
				keep(e)
			}
		}
		for _, n := range r.Removed {
			delete(held, n)
		}
	case protocol.FullState(r.TypeURL):
		// S1: the response is the whole subscribed set; what it leaves out is deleted.
		clear(held)
		for _, e := range r.Resources {
			if c.subscribes(r.TypeURL, e.Name) {
				keep(e)
			}
		}
	default:
		// S2: only what the response carries is updated.
		for _, e := range r.Resources {
			if c.subscribes(r.TypeURL, e.Name) {
				keep(e)
			}
		}
	}
	if !c.model.delta() {
		s.accepted = r.Version // every response is ACKed, so accepted
	}
	if c.model != convGRPC {
		c.warm(r, before)
	}
	c.prune()
	changes := c.changes()
	ack := c.ack(r)
	if c.model == convGRPC && c.run.in.next(2) == 1 {
		// grpc-go may ACK before its watchers have asked for what the update named.
		return append([]convRequest{ack}, changes...)
	}
	// Envoy pauses EDS during a CDS update (RDS during an LDS one) and resumes
	// it before the ACK: the new subscription goes first.
	return append(changes, ack)
}

// warm follows Envoy's warming: a new or updated cluster (listener) waits for an
// EDS (RDS) response carrying its service (route), R16.
func (c *convClient) warm(r *Response, before map[string]convHeld) {
	var warming map[string]string
	switch r.TypeURL {
	case protocol.TypeCluster:
		warming = c.warmingClusters
	case protocol.TypeListener:
		warming = c.warmingListeners
	case protocol.TypeEndpoint:
		warming = c.warmingClusters
	case protocol.TypeRoute:
		warming = c.warmingListeners
	}
	switch r.TypeURL {
	case protocol.TypeCluster, protocol.TypeListener:
		held := c.held[r.TypeURL]
		for n := range warming {
			if _, ok := held[n]; !ok {
				delete(warming, n)
			}
		}
		for n, h := range held {
			if old, ok := before[n]; ok && old.version == h.version {
				continue
			}
			dep := h.refs.service
			if r.TypeURL == protocol.TypeListener {
				dep = h.refs.route
			}
			if dep != "" {
				warming[n] = dep
			} else {
				delete(warming, n)
			}
		}
	default:
		for _, e := range r.Resources {
			if !c.subscribes(r.TypeURL, e.Name) {
				continue
			}
			for n, dep := range warming {
				if dep == e.Name {
					delete(warming, n)
				}
			}
		}
	}
}
