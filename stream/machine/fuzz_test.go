package machine

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/leanxds/leanxds/internal/xdstest"
	"github.com/leanxds/leanxds/protocol"
	"github.com/leanxds/leanxds/store"
)

// The fuzzers drive the pure state machines with random request sequences and
// random commits, and check the protocol's invariants after every step.

var (
	fuzzTypes = []string{protocol.TypeCluster, protocol.TypeEndpoint, protocol.TypeListener, protocol.TypeRoute}
	fuzzNames = []string{"a", "b", "c", "d"}
)

// fuzzTrace logs every step of a fuzz input: LEANXDS_FUZZ_TRACE=1 go test -run FuzzX/ID.
var fuzzTrace = os.Getenv("LEANXDS_FUZZ_TRACE") != ""

// r16Dependent maps a type to the one whose resources R16 answers again after a
// response of it: a cluster's endpoints, a listener's routes.
var r16Dependent = map[string]string{
	protocol.TypeCluster:  protocol.TypeEndpoint,
	protocol.TypeListener: protocol.TypeRoute,
}

// fuzzInput reads the fuzzer's bytes as a stream of small numbers.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) next(n int) int {
	if len(in.b) == 0 {
		return 0
	}
	v := int(in.b[0]) % n
	in.b = in.b[1:]
	return v
}

func (in *fuzzInput) done() bool { return len(in.b) == 0 }

// fuzzCommit applies one random change to the store.
func fuzzCommit(t *testing.T, st *store.Store, in *fuzzInput) {
	name := fuzzNames[in.next(len(fuzzNames))]
	other := fuzzNames[in.next(len(fuzzNames))]
	variant := in.next(3)
	var c store.Change
	defer func() {
		if fuzzTrace {
			t.Logf("commit %+v", c)
		}
	}()
	switch in.next(5) {
	case 0:
		c = store.Set("s", xdstest.Cluster(name, xdstest.WithConnectTimeout(time.Duration(variant+1)*time.Second)))
	case 1:
		c = store.Set("s", xdstest.Endpoints(name, fmt.Sprintf("10.0.0.%d:80", variant+1)))
	case 2:
		c = store.Set("s", xdstest.Listener(name, uint32(8000+variant), other))
	case 3:
		c = store.Set("s", xdstest.SimpleRoute(name, other))
	default:
		c = store.Delete("s", fuzzTypes[in.next(len(fuzzTypes))], name)
	}
	if _, err := st.Commit(c); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// fuzzNameList returns a random list of names, sometimes with "*".
func fuzzNameList(in *fuzzInput) []string {
	var names []string
	for _, n := range fuzzNames {
		if in.next(2) == 1 {
			names = append(names, n)
		}
	}
	if in.next(4) == 0 {
		names = append(names, Wildcard)
	}
	return names
}

// sotwModel is the fuzzer's own account of a SotW client's subscriptions.
type sotwModel struct {
	requested, wildcard, legacy bool
	names                       map[string]bool
	// lastNonce and lastVersion are those of the newest response received.
	lastNonce, lastVersion string
	// last is the content of the newest response; grew is set when the
	// subscription grew since, changed when the store changed since.
	last          map[string]string
	grew, changed bool
}

func (m *sotwModel) subscribes(n string) bool { return m.wildcard || m.names[n] }

func FuzzSotW(f *testing.F) {
	f.Add([]byte{1, 0, 0, 1, 1, 0, 0, 0, 0, 2, 0, 0, 1, 1, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1, 2, 1, 0, 0, 4, 1, 2, 0, 3, 2, 1, 1, 0})
	f.Add([]byte{0, 2, 0, 0, 3, 0, 0, 0, 0, 0, 1, 2, 0, 1, 1, 0, 1, 3, 1, 1, 1, 0, 0, 1, 4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		st := store.New()
		sm := NewSotW(Config{Scope: "s", Node: &corev3.Node{Id: "fuzz"}})
		models := map[string]*sotwModel{}
		nonces := map[string]bool{}
		for steps := 0; !in.done() && steps < 200; steps++ {
			if in.next(3) == 0 {
				fuzzCommit(t, st, in)
				for _, m := range models {
					m.changed = true
				}
			} else {
				typeURL := fuzzTypes[in.next(len(fuzzTypes))]
				m := models[typeURL]
				if m == nil {
					m = &sotwModel{names: map[string]bool{}}
					models[typeURL] = m
				}
				names := fuzzNameList(in)
				req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names}
				stale := false
				switch in.next(4) {
				case 0: // a subscription without a nonce
				case 1:
					req.ResponseNonce, req.VersionInfo = m.lastNonce, m.lastVersion
				case 2:
					req.ResponseNonce = m.lastNonce
					req.ErrorDetail = &statuspb.Status{Code: 3, Message: "rejected"}
				case 3:
					req.ResponseNonce = "stale"
					stale = m.lastNonce != ""
				}
				if fuzzTrace {
					t.Logf("sotw request %s names=%v nonce=%q nack=%v", protocol.Short(typeURL), names, req.ResponseNonce, req.ErrorDetail != nil)
				}
				if _, err := sm.Receive(req, time.Time{}, st.View()); err != nil {
					t.Fatalf("receive: %v", err)
				}
				if !stale {
					m.apply(names)
				}
			}
			check := func(resps []*Response) {
				v := st.View()
				for _, r := range resps {
					if fuzzTrace {
						var names []string
						for _, e := range r.Resources {
							names = append(names, e.Name)
						}
						t.Logf("  response %s nonce=%s version=%s names=%v", protocol.Short(r.TypeURL), r.Nonce, r.Version, names)
					}
					checkSotWResponse(t, v, r, models[r.TypeURL], nonces)
					if dep := models[r16Dependent[r.TypeURL]]; dep != nil {
						dep.changed = true // R16 may answer the dependent type again
					}
				}
			}
			check(sm.Responses(st.View()))
			if again := sm.Responses(st.View()); len(again) > 0 {
				if fuzzTrace {
					for _, r := range again {
						var names []string
						for _, e := range r.Resources {
							names = append(names, e.Name)
						}
						t.Logf("  again %s nonce=%s version=%s names=%v", protocol.Short(r.TypeURL), r.Nonce, r.Version, names)
					}
				}
				t.Fatalf("R6: a second computation with nothing new sent %s again", protocol.Short(again[0].TypeURL))
			}
		}
	})
}

// apply follows R10, R11 and S4 on the model's side.
func (m *sotwModel) apply(names []string) {
	first := !m.requested
	m.requested = true
	next := map[string]bool{}
	star := false
	for _, n := range names {
		if n == Wildcard {
			star = true
		} else {
			next[n] = true
		}
	}
	was := m.wildcard
	switch {
	case star:
		m.wildcard, m.legacy = true, false
	case len(names) == 0 && (first || m.legacy):
		m.wildcard, m.legacy = true, true
	default:
		m.wildcard, m.legacy = false, false
	}
	for n := range next {
		if !m.names[n] {
			m.grew = true
		}
	}
	if m.wildcard && !was {
		m.grew = true
	}
	m.names = next
}

func checkSotWResponse(t *testing.T, v store.View, r *Response, m *sotwModel, nonces map[string]bool) {
	t.Helper()
	if m == nil {
		t.Fatalf("a response for %s, which was never requested", protocol.Short(r.TypeURL))
	}
	if nonces[r.Nonce] || r.Nonce == "" {
		t.Fatalf("R1: nonce %q not unique", r.Nonce)
	}
	nonces[r.Nonce] = true
	content := map[string]string{}
	for _, e := range r.Resources {
		if _, dup := content[e.Name]; dup {
			t.Fatalf("R13: %s twice in a %s response", e.Name, protocol.Short(r.TypeURL))
		}
		content[e.Name] = e.Version
		if !m.subscribes(e.Name) {
			t.Fatalf("R8: %s %q sent but not subscribed (wildcard=%v names=%v)", protocol.Short(r.TypeURL), e.Name, m.wildcard, m.names)
		}
	}
	if protocol.FullState(r.TypeURL) {
		for e := range v.Table("s", r.TypeURL).All() {
			if m.subscribes(e.Name) && content[e.Name] != e.Version {
				t.Fatalf("S1: %s response lacks %q at its current version", protocol.Short(r.TypeURL), e.Name)
			}
		}
	}
	if !m.changed && !m.grew && m.last != nil && maps.Equal(m.last, content) {
		t.Fatalf("R6: %s sent the same content again with nothing new: %v", protocol.Short(r.TypeURL), slices.Sorted(maps.Keys(content)))
	}
	m.last, m.grew, m.changed = content, false, false
	m.lastNonce, m.lastVersion = r.Nonce, r.Version
}

// deltaModel is the fuzzer's account of a delta client.
type deltaModel struct {
	requested, wildcard, legacy bool
	names                       map[string]bool
	nonces                      []string
	// sinceLast: nothing happened since the newest response of the type.
	last          *Response
	grew, changed bool
}

func FuzzDelta(f *testing.F) {
	f.Add([]byte{1, 0, 1, 1, 0, 0, 0, 0, 2, 0, 0, 1, 1, 1, 0, 2})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1, 2, 1, 0, 0, 4, 1, 2, 0, 3, 2, 1, 1, 0, 1})
	f.Add([]byte{0, 1, 0, 0, 1, 1, 3, 1, 1, 0, 1, 0, 1, 1, 2, 0, 4, 1, 0, 1, 1, 1, 2, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		st := store.New()
		d := NewDelta(Config{Scope: "s", Node: &corev3.Node{Id: "fuzz"}})
		models := map[string]*deltaModel{}
		seen := map[string]bool{}
		for steps := 0; !in.done() && steps < 200; steps++ {
			if in.next(3) == 0 {
				fuzzCommit(t, st, in)
				for _, m := range models {
					m.changed = true
				}
			} else {
				typeURL := fuzzTypes[in.next(len(fuzzTypes))]
				m := models[typeURL]
				if m == nil {
					m = &deltaModel{names: map[string]bool{}}
					models[typeURL] = m
				}
				req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL}
				if in.next(2) == 0 {
					req.ResourceNamesSubscribe = fuzzNameList(in)
				} else {
					req.ResourceNamesUnsubscribe = fuzzNameList(in)
				}
				if n := len(m.nonces); n > 0 && in.next(2) == 0 {
					req.ResponseNonce = m.nonces[in.next(n)]
					if in.next(3) == 0 {
						req.ErrorDetail = &statuspb.Status{Message: "rejected"}
					}
				}
				if fuzzTrace {
					t.Logf("delta request %s sub=%v unsub=%v nonce=%q nack=%v", protocol.Short(typeURL), req.ResourceNamesSubscribe, req.ResourceNamesUnsubscribe, req.ResponseNonce, req.ErrorDetail != nil)
				}
				if _, err := d.Receive(req, time.Time{}, st.View()); err != nil {
					t.Fatalf("receive: %v", err)
				}
				m.apply(req)
			}
			v := st.View()
			for _, r := range d.Responses(v) {
				if fuzzTrace {
					var names []string
					for _, e := range r.Resources {
						names = append(names, e.Name)
					}
					t.Logf("  response %s nonce=%s updated=%v removed=%v", protocol.Short(r.TypeURL), r.Nonce, names, r.Removed)
				}
				checkDeltaResponse(t, v, r, models[r.TypeURL], seen)
				if dep := models[r16Dependent[r.TypeURL]]; dep != nil {
					dep.changed = true // R16 may answer the dependent type again
				}
			}
			if again := d.Responses(v); len(again) > 0 {
				t.Fatalf("R6: a second computation with nothing new sent %s again", protocol.Short(again[0].TypeURL))
			}
		}
	})
}

// apply follows D2, D4 and D6 on the model's side.
func (m *deltaModel) apply(req *discoveryv3.DeltaDiscoveryRequest) {
	first := !m.requested
	m.requested = true
	if first && len(req.GetResourceNamesSubscribe()) == 0 && len(req.GetResourceNamesUnsubscribe()) == 0 {
		m.wildcard, m.legacy, m.grew = true, true, true
	}
	if m.legacy && len(req.GetResourceNamesSubscribe()) > 0 && !slices.Contains(req.GetResourceNamesSubscribe(), Wildcard) {
		m.wildcard, m.legacy = false, false // D4: the legacy wildcard ends with a name
	}
	for _, n := range req.GetResourceNamesSubscribe() {
		if n == Wildcard {
			m.wildcard, m.legacy = true, false
		} else {
			m.names[n] = true
		}
		m.grew = true // D5: every subscribe is answered
	}
	for _, n := range req.GetResourceNamesUnsubscribe() {
		if n == Wildcard {
			m.wildcard = false
		} else {
			delete(m.names, n)
			m.grew = m.grew || m.wildcard // D6
		}
	}
}

func checkDeltaResponse(t *testing.T, v store.View, r *Response, m *deltaModel, seen map[string]bool) {
	t.Helper()
	if m == nil {
		t.Fatalf("a response for %s, which was never requested", protocol.Short(r.TypeURL))
	}
	if seen[r.Nonce] || r.Nonce == "" {
		t.Fatalf("R1, D1: nonce %q not unique", r.Nonce)
	}
	seen[r.Nonce] = true
	names := map[string]bool{}
	for _, e := range r.Resources {
		if names[e.Name] {
			t.Fatalf("R13: %s twice", e.Name)
		}
		names[e.Name] = true
		if !m.wildcard && !m.names[e.Name] {
			t.Fatalf("R8: %s %q sent but not subscribed", protocol.Short(r.TypeURL), e.Name)
		}
		cur := v.Table("s", r.TypeURL).Get(e.Name)
		if cur != nil && cur.Version != e.Version {
			t.Fatalf("D8: %q sent at %s, the store holds %s", e.Name, e.Version, cur.Version)
		}
		if cur == nil && r.TypeURL != protocol.TypeEndpoint {
			t.Fatalf("%q sent but not in the store", e.Name)
		}
	}
	for _, n := range r.Removed {
		if names[n] {
			t.Fatalf("D7: %q both updated and removed", n)
		}
	}
	if !m.changed && !m.grew && m.last != nil && slices.Equal(m.last.Resources, r.Resources) && slices.Equal(m.last.Removed, r.Removed) {
		t.Fatalf("R6: %s sent the same content again with nothing new", protocol.Short(r.TypeURL))
	}
	m.last, m.grew, m.changed = r, false, false
	m.nonces = append(m.nonces, r.Nonce)
}
