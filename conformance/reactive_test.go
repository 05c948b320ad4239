package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/leanxds/leanxds/internal/xdstest"
)

// reactiveDriver is the scripted client of journeys: a small xDS client written
// for this suite that behaves as a proxyless client does. It subscribes LDS, RDS,
// CDS and EDS by explicit name, following the references of what it holds
// (P4); ACKs what it accepts and NACKs, keeping the last good resource, what it
// rejects (the checks grpc-go makes on the fields the journeys use); reconnects
// after the server goes away presenting what it holds (S3, D3); and resolves its
// requests through the configuration it holds, to backend addresses.
//
// Like grpc-go, it keeps serving with the newest complete configuration (listener,
// route, every cluster the route uses and their endpoints) while it fetches what
// a new one references. It is stricter than a real client: every response is
// checked against the rules that hold whatever the scenario (a new nonce, R1; no
// name twice, R13; nothing it did not ask for, R8); the server must never delete,
// or empty of endpoints, a resource the configuration in use still needs (R15);
// nor leave a new or updated listener or cluster waiting for its route or
// endpoints (R16).
type reactiveDriver struct {
	node  *corev3.Node
	delta bool
	cc    *grpc.ClientConn
	// backendOf maps an endpoint address to its backend id.
	backendOf map[string]string

	mu sync.Mutex
	// held is what the client holds, by type and name.
	held map[string]map[string]heldResource
	// subs are the names subscribed, by type; previous are those of the
	// subscription before, which the server may still be answering.
	subs     map[string][]string
	previous map[string][]string
	// acked is the version of the newest accepted SotW response, by type.
	acked map[string]string
	// nonces are those of the current stream: every one seen (R1), and the
	// newest by type.
	seen      map[string]bool
	lastNonce map[string]string
	// warming names what waits for an answer: "EDS name" or "RDS name" (R16).
	warming map[string]bool
	// problems are breaches of the rules seen since the last check.
	problems []string
	// serving is each backend's share of the traffic under the newest complete
	// configuration, nil before there is one; uses names the resources it needs,
	// as "type name".
	serving map[string]float64
	uses    map[string]bool
	// credit is the smooth weighted round robin state of send.
	credit map[string]float64
}

type heldResource struct {
	msg     proto.Message
	version string
}

func newReactiveDriver(t *testing.T, srv *xdsServer, nodeID, scope string, b backends, delta bool) *reactiveDriver {
	cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	d := &reactiveDriver{
		node: &corev3.Node{Id: nodeID, Cluster: scope}, delta: delta, cc: cc, backendOf: map[string]string{},
		held: map[string]map[string]heldResource{}, subs: map[string][]string{lds: {svcListener}}, previous: map[string][]string{},
		acked: map[string]string{}, warming: map[string]bool{}, credit: map[string]float64{},
	}
	for id, addr := range b {
		d.backendOf[addr] = id
	}
	return d
}

func (d *reactiveDriver) listener(cfg config) *listenerv3.Listener {
	return cfg.shapeListener(xdstest.APIListener(svcListener, svcRoute))
}

// start runs the client until the test ends, reconnecting whenever its stream
// ends.
func (d *reactiveDriver) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = d.session(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// session is one stream: it subscribes to everything the client wants, presenting
// what it holds, then answers responses until the stream ends.
func (d *reactiveDriver) session(ctx context.Context) error {
	method := "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	if d.delta {
		method = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
	}
	cs, err := d.cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	out := &outbox{cs: cs, node: d.node}
	d.mu.Lock()
	d.seen, d.lastNonce = map[string]bool{}, map[string]string{}
	for _, u := range []string{lds, rds, cds, eds} {
		if len(d.subs[u]) == 0 {
			continue
		}
		if d.delta {
			versions := map[string]string{}
			for name, h := range d.held[u] {
				versions[name] = h.version
			}
			out.add(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: u, ResourceNamesSubscribe: d.subs[u], InitialResourceVersions: versions})
		} else {
			out.add(&discoveryv3.DiscoveryRequest{TypeUrl: u, ResourceNames: d.subs[u], VersionInfo: d.acked[u]})
		}
	}
	d.mu.Unlock()
	if err := out.flush(); err != nil {
		return err
	}
	for {
		if d.delta {
			r := new(discoveryv3.DeltaDiscoveryResponse)
			if err := cs.RecvMsg(r); err != nil {
				return err
			}
			d.mu.Lock()
			d.onDelta(r, out)
			d.mu.Unlock()
		} else {
			r := new(discoveryv3.DiscoveryResponse)
			if err := cs.RecvMsg(r); err != nil {
				return err
			}
			d.mu.Lock()
			d.onSotW(r, out)
			d.mu.Unlock()
		}
		if err := out.flush(); err != nil {
			return err
		}
	}
}

// outbox queues requests while the client's lock is held and sends them after:
// ACKs and NACKs at once, subscription changes a moment later, as grpc-go does
// (its watchers run between the two). A server that acts on an ACK before the
// subscription change that follows it is seen doing so.
type outbox struct {
	cs      grpc.ClientStream
	node    *corev3.Node
	pending []proto.Message
	later   []proto.Message
	sent    int
}

// subscriptionDelay is how long after an ACK the subscription changes it caused
// are sent.
const subscriptionDelay = 10 * time.Millisecond

func (o *outbox) add(m proto.Message)      { o.pending = append(o.pending, m) }
func (o *outbox) addLater(m proto.Message) { o.later = append(o.later, m) }

// flush sends the pending requests, then, after subscriptionDelay, the later ones.
func (o *outbox) flush() error {
	if err := o.send(o.pending); err != nil {
		return err
	}
	o.pending = nil
	if len(o.later) == 0 {
		return nil
	}
	time.Sleep(subscriptionDelay)
	err := o.send(o.later)
	o.later = nil
	return err
}

func (o *outbox) send(ms []proto.Message) error {
	for _, m := range ms {
		if o.sent == 0 { // the Node goes on the first request of a stream only (R2)
			switch r := m.(type) {
			case *discoveryv3.DiscoveryRequest:
				r.Node = o.node
			case *discoveryv3.DeltaDiscoveryRequest:
				r.Node = o.node
			}
		}
		if err := o.cs.SendMsg(m); err != nil {
			return err
		}
		o.sent++
	}
	return nil
}

// onSotW handles a state-of-the-world response.
func (d *reactiveDriver) onSotW(r *discoveryv3.DiscoveryResponse, out *outbox) {
	u := r.GetTypeUrl()
	d.checkNonce(u, r.GetNonce())
	got := d.decode(u, r.GetResources(), func(int) string { return r.GetVersionInfo() })
	if reason := rejects(u, got); reason != "" {
		out.add(&discoveryv3.DiscoveryRequest{TypeUrl: u, ResourceNames: d.subs[u], VersionInfo: d.acked[u],
			ResponseNonce: r.GetNonce(), ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: reason}})
		return
	}
	if u == lds || u == cds { // S1: the whole set
		d.replace(u, got)
	} else { // S2: what changed
		d.merge(u, got, nil)
	}
	d.acked[u] = r.GetVersionInfo()
	out.add(&discoveryv3.DiscoveryRequest{TypeUrl: u, ResourceNames: d.subs[u], VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()})
	d.follow(out)
}

// onDelta handles an incremental response.
func (d *reactiveDriver) onDelta(r *discoveryv3.DeltaDiscoveryResponse, out *outbox) {
	u := r.GetTypeUrl()
	d.checkNonce(u, r.GetNonce())
	var anys []*anypb.Any
	for _, res := range r.GetResources() {
		anys = append(anys, res.GetResource())
	}
	got := d.decode(u, anys, func(i int) string { return r.GetResources()[i].GetVersion() })
	if reason := rejects(u, got); reason != "" {
		out.add(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: u, ResponseNonce: r.GetNonce(),
			ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: reason}})
		return
	}
	d.merge(u, got, r.GetRemovedResources())
	out.add(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: u, ResponseNonce: r.GetNonce()})
	d.follow(out)
}

func (d *reactiveDriver) checkNonce(u, nonce string) {
	if nonce == "" || d.seen[nonce] {
		d.problem("R1: a %s response has the nonce %q, empty or already used on the stream", shortType(u), nonce)
	}
	d.seen[nonce] = true
	d.lastNonce[u] = nonce
}

// decode unpacks the resources of a response, checking R13 and R8.
func (d *reactiveDriver) decode(u string, anys []*anypb.Any, version func(int) string) map[string]heldResource {
	got := map[string]heldResource{}
	for i, a := range anys {
		m, err := a.UnmarshalNew()
		if err != nil {
			d.problem("a %s resource does not decode: %v", shortType(u), err)
			continue
		}
		name := resourceName(m)
		if _, dup := got[name]; dup {
			d.problem("R13: %s %s appears twice in one response", shortType(u), name)
		}
		if !slices.Contains(d.subs[u], name) && !slices.Contains(d.previous[u], name) {
			d.problem("R8: %s %s was sent, but the client did not ask for it (it asks for %v)", shortType(u), name, d.subs[u])
		}
		got[name] = heldResource{msg: m, version: version(i)}
	}
	return got
}

// replace makes got the whole content of type u (S1).
func (d *reactiveDriver) replace(u string, got map[string]heldResource) {
	var deleted []string
	for name := range d.held[u] {
		if _, ok := got[name]; !ok {
			deleted = append(deleted, name)
		}
	}
	d.merge(u, got, deleted)
}

// merge adds got to what the client holds of type u and removes removed, marking
// what new or updated listeners and clusters now wait for (R16).
func (d *reactiveDriver) merge(u string, got map[string]heldResource, removed []string) {
	if d.held[u] == nil {
		d.held[u] = map[string]heldResource{}
	}
	for name, h := range got {
		prev, had := d.held[u][name]
		changed := !had || !proto.Equal(prev.msg, h.msg)
		d.held[u][name] = h
		switch u {
		case lds:
			if changed {
				d.warming["RDS "+routeNameOf(h.msg)] = true
			}
		case cds:
			if changed {
				d.warming["EDS "+serviceNameOf(h.msg.(*clusterv3.Cluster))] = true
			}
		case rds:
			delete(d.warming, "RDS "+name)
		case eds:
			delete(d.warming, "EDS "+name)
		}
	}
	// R15, R18: what the configuration in use needs may go once the client has
	// accepted listeners and routes that no longer name it.
	referenced := d.referenced()
	for _, name := range removed {
		if d.uses[shortType(u)+" "+name] && slices.Contains(d.subs[u], name) && slices.Contains(referenced[u], name) {
			d.problem("R15: the server deleted %s %s, which the configuration in use still needs", shortType(u), name)
		}
		delete(d.held[u], name)
	}
	if u == eds {
		for name, h := range got {
			if d.uses["EDS "+name] && len(addressesOf(h.msg.(*endpointv3.ClusterLoadAssignment))) == 0 {
				d.problem("R15: the server emptied the endpoints of %s, which the configuration in use still needs", name)
			}
		}
	}
	d.evaluate()
}

// referenced returns, by type, what the held resources reference, level by
// level from the listener.
func (d *reactiveDriver) referenced() map[string][]string {
	want := map[string][]string{lds: {svcListener}}
	for _, h := range d.held[lds] {
		want[rds] = appendUnique(want[rds], routeNameOf(h.msg))
	}
	for name, h := range d.held[rds] {
		if slices.Contains(want[rds], name) {
			want[cds] = appendUnique(want[cds], clustersOf(h.msg.(*routev3.RouteConfiguration))...)
		}
	}
	for name, h := range d.held[cds] {
		if slices.Contains(want[cds], name) {
			want[eds] = appendUnique(want[eds], serviceNameOf(h.msg.(*clusterv3.Cluster)))
		}
	}
	return want
}

// follow subscribes to what the held resources reference, level by level, and
// drops what neither they nor the configuration in use need any more.
func (d *reactiveDriver) follow(out *outbox) {
	want := d.referenced()
	// What the configuration in use needs stays subscribed until a new one is
	// complete, as grpc-go keeps its old clusters while it fetches new ones.
	for use := range d.uses {
		u, name, _ := strings.Cut(use, " ")
		typeURL := map[string]string{"LDS": lds, "RDS": rds, "CDS": cds, "EDS": eds}[u]
		want[typeURL] = appendUnique(want[typeURL], name)
	}
	for _, u := range []string{lds, rds, cds, eds} {
		next := slices.Sorted(slices.Values(want[u]))
		if slices.Equal(next, d.subs[u]) {
			continue
		}
		prev := d.subs[u]
		d.subs[u], d.previous[u] = next, prev
		for name := range d.held[u] {
			if !slices.Contains(next, name) {
				delete(d.held[u], name)
			}
		}
		for w := range d.warming {
			if (u == eds && w[:4] == "EDS ") || (u == rds && w[:4] == "RDS ") {
				if !slices.Contains(next, w[4:]) {
					delete(d.warming, w)
				}
			}
		}
		if d.delta {
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: u}
			for _, n := range next {
				if !slices.Contains(prev, n) {
					req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
				}
			}
			for _, n := range prev {
				if !slices.Contains(next, n) {
					req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
				}
			}
			out.addLater(req)
		} else {
			out.addLater(&discoveryv3.DiscoveryRequest{TypeUrl: u, ResourceNames: next, VersionInfo: d.acked[u], ResponseNonce: d.lastNonce[u]})
		}
	}
	d.evaluate()
}

// evaluate switches to the configuration held once it is complete; until then the
// previous one keeps serving.
func (d *reactiveDriver) evaluate() {
	if shares, uses, err := d.resolve(); err == nil {
		d.serving, d.uses = shares, uses
	}
}

// resolve follows listener → route → clusters → endpoints and returns each
// backend's share of the traffic, and the resources that took.
func (d *reactiveDriver) resolve() (map[string]float64, map[string]bool, error) {
	l, ok := d.held[lds][svcListener]
	if !ok {
		return nil, nil, errors.New("no listener")
	}
	routeName := routeNameOf(l.msg)
	rt, ok := d.held[rds][routeName]
	if !ok {
		return nil, nil, fmt.Errorf("no route configuration %s", routeName)
	}
	uses := map[string]bool{"LDS " + svcListener: true, "RDS " + routeName: true}
	split := splitOf(rt.msg.(*routev3.RouteConfiguration))
	if len(split) == 0 {
		return nil, nil, fmt.Errorf("route configuration %s routes nowhere", routeName)
	}
	var total float64
	for _, w := range split {
		total += float64(w)
	}
	shares := map[string]float64{}
	for name, w := range split {
		c, ok := d.held[cds][name]
		if !ok {
			return nil, nil, fmt.Errorf("the route uses cluster %s, which the client does not hold yet", name)
		}
		svc := serviceNameOf(c.msg.(*clusterv3.Cluster))
		cla, ok := d.held[eds][svc]
		if !ok {
			return nil, nil, fmt.Errorf("the route uses cluster %s, whose endpoints the client does not hold yet", name)
		}
		addrs := addressesOf(cla.msg.(*endpointv3.ClusterLoadAssignment))
		if len(addrs) == 0 {
			return nil, nil, fmt.Errorf("cluster %s has no endpoint", name)
		}
		uses["CDS "+name], uses["EDS "+svc] = true, true
		for _, a := range addrs {
			shares[d.backendOf[a]] += float64(w) / total / float64(len(addrs))
		}
	}
	return shares, uses, nil
}

// send resolves n requests through the configuration in use, spreading them over
// the backends in proportion to their shares (smooth weighted round robin).
func (d *reactiveDriver) send(_ context.Context, n int) []reply {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]reply, n)
	for i := range out {
		if d.serving == nil {
			_, _, err := d.resolve()
			out[i] = reply{err: fmt.Errorf("no complete configuration yet: %w", err)}
			continue
		}
		best := ""
		for _, b := range slices.Sorted(maps.Keys(d.serving)) {
			d.credit[b] += d.serving[b]
			if best == "" || d.credit[b] > d.credit[best] {
				best = b
			}
		}
		d.credit[best]--
		out[i] = reply{backend: best}
	}
	return out
}

// check reports the rule breaches seen since the last check, and what still waits
// for its route or endpoints although the client is settled (R16).
func (d *reactiveDriver) check(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.problems {
		t.Errorf("the scripted client saw: %s", p)
	}
	d.problems = nil
	for _, w := range slices.Sorted(maps.Keys(d.warming)) {
		t.Errorf("R16: the client is settled but still waits for %s", w)
	}
}

func (d *reactiveDriver) problem(format string, args ...any) {
	d.problems = append(d.problems, fmt.Sprintf(format, args...))
}

// rejects returns why a proxyless client rejects a response, "" when it accepts
// it: the checks grpc-go makes on the fields the journeys use.
func rejects(u string, got map[string]heldResource) string {
	for _, name := range slices.Sorted(maps.Keys(got)) {
		var reason string
		switch m := got[name].msg.(type) {
		case *listenerv3.Listener:
			reason = checkHTTPFilters(m)
		case *clusterv3.Cluster:
			switch m.GetLbPolicy() {
			case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_RING_HASH, clusterv3.Cluster_LEAST_REQUEST:
			default:
				reason = "unsupported lb_policy " + m.GetLbPolicy().String()
			}
		case *endpointv3.ClusterLoadAssignment:
			for _, l := range m.GetEndpoints() {
				if l.GetLocality() == nil {
					reason = "a locality has no locality"
				}
			}
		}
		if reason != "" {
			return fmt.Sprintf("%s %q: %s", shortType(u), name, reason)
		}
	}
	return ""
}

// checkHTTPFilters requires uniquely named HTTP filters ending with the router,
// and the router nowhere else.
func checkHTTPFilters(l *listenerv3.Listener) string {
	h := hcmOf(l)
	if h == nil {
		return "no HTTP connection manager"
	}
	fs := h.GetHttpFilters()
	seen := map[string]bool{}
	for i, f := range fs {
		if seen[f.GetName()] {
			return "duplicate HTTP filter " + f.GetName()
		}
		seen[f.GetName()] = true
		if isRouter := f.GetTypedConfig().GetTypeUrl() == "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"; isRouter != (i == len(fs)-1) {
			return "the router must be the last HTTP filter, and only the last"
		}
	}
	if len(fs) == 0 {
		return "no HTTP filter"
	}
	return ""
}

func hcmOf(m proto.Message) *hcmv3.HttpConnectionManager {
	l, ok := m.(*listenerv3.Listener)
	if !ok {
		return nil
	}
	h := new(hcmv3.HttpConnectionManager)
	if a := l.GetApiListener().GetApiListener(); a != nil && a.UnmarshalTo(h) == nil {
		return h
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetTypedConfig().UnmarshalTo(h) == nil {
				return h
			}
		}
	}
	return nil
}

func routeNameOf(m proto.Message) string { return hcmOf(m).GetRds().GetRouteConfigName() }

func serviceNameOf(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// splitOf returns the clusters of the first route of the first virtual host, with
// their weights.
func splitOf(rc *routev3.RouteConfiguration) map[string]uint32 {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			a := r.GetRoute()
			if c := a.GetCluster(); c != "" {
				return map[string]uint32{c: 1}
			}
			out := map[string]uint32{}
			for _, w := range a.GetWeightedClusters().GetClusters() {
				out[w.GetName()] = w.GetWeight().GetValue()
			}
			return out
		}
	}
	return nil
}

func clustersOf(rc *routev3.RouteConfiguration) []string {
	return slices.Sorted(maps.Keys(splitOf(rc)))
}

func addressesOf(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
		}
	}
	return out
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	}
	return ""
}

func appendUnique(list []string, names ...string) []string {
	for _, n := range names {
		if n != "" && !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}
