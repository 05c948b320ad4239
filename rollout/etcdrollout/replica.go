package etcdrollout

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/source"
	"github.com/leanxds/leanxds/store"
	"github.com/leanxds/leanxds/stream"
)

// Defaults of Options.
const (
	DefaultInterval       = time.Second
	DefaultTTL            = 10 * time.Second
	DefaultRequestTimeout = 5 * time.Second
)

// Streams is what a Replica reads and wakes of the xDS streams: a
// *stream.Server.
type Streams interface {
	// Applied returns where the nodes sel selects stand against store
	// revision rev.
	Applied(rev uint64, sel stream.Selector) stream.Applied
	// Wake makes the streams of scopes read their view again (every stream
	// when one is "").
	Wake(scopes ...string)
}

// Options configure a Replica.
type Options struct {
	// Client and Prefix are the etcd cluster and prefix the etcd source
	// serves (no trailing slash).
	Client *clientv3.Client
	Prefix string
	// ID names the replica among the fleet: the fleet publisher's id.
	ID string
	// Logger receives stages and decisions; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the decisions (windows); nil is time.Now.
	Now func() time.Time
	// Interval is how often the deciding replica reads the fleet status; 0
	// is DefaultInterval.
	Interval time.Duration
	// TTL is the lease of the replica's candidacy in the election of the
	// deciding replica: how long a replica that died stays the decider; 0
	// is DefaultTTL.
	TTL time.Duration
	// RequestTimeout bounds each etcd request; 0 is DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Replica runs the rollouts of P/rollout/state on one replica of a fleet
// served by an etcd source (see the package doc): it is the stream.Router
// of the replica's streams, the source.EtcdRollouts of its source, and gives
// its fleet publisher its nodes' standing (Standing).
type Replica struct {
	cli      *clientv3.Client
	prefix   string
	id       string
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	ttl      time.Duration
	timeout  time.Duration

	streams atomic.Pointer[streamsBox]
	// route is how nodes are served now: read by every stream, without a
	// lock. mu serialises its changes.
	route  atomic.Pointer[route]
	mu     sync.Mutex
	leader atomic.Bool
	// windowKey names the stage ("<id>/<stage>") whose window started at
	// windowStart, on this replica's clock; only the deciding goroutine uses
	// them.
	windowKey   string
	windowStart time.Time
	// latest is the newest state seen (from the source or the watch), for
	// Status; guarded by mu, as are the counts of the decisions written.
	latest           State
	latestRev        int64
	transitions      map[string]uint64
	nacks, rollbacks uint64
	descs            descs
	// seen holds the ids of the nodes of one stage of one rollout this
	// replica saw during it (served a view of a scope the target changes,
	// or listed by Standing), within MaxSeen and MaxSeenBytes; Standing
	// publishes how many, and how many of them are gone. View records a node
	// on every read: a node recorded already costs an atomic load and a
	// lock-free lookup; seenMu serialises the rest.
	seenSet atomic.Pointer[seenSet]
	seenMu  sync.Mutex
}

// seenSet is the nodes a replica saw during stage stage of rollout id.
type seenSet struct {
	id    string
	stage int
	ids   sync.Map // node id → struct{}
	// n and bytes count the ids and their bytes; guarded by Replica.seenMu.
	n, bytes int
}

// MaxSeen and MaxSeenBytes bound the nodes of a stage a replica remembers
// having seen during it, by count and by the bytes of their ids (node ids are
// the clients'): past either, the nodes it first sees are not remembered,
// and one of them that goes is not counted as gone.
const (
	MaxSeen      = 10_000
	MaxSeenBytes = 1 << 20
)

type streamsBox struct{ s Streams }

// route is how a replica serves the nodes of a rollout: immutable once
// published.
type route struct {
	state  State
	modRev int64
	// routing is set while some nodes are served base: from the target's
	// commit (Committing) until the rollout is promoted, or the source
	// commits another generation (a rollback's base).
	routing bool
	// base is the view of the base generation, baseGen its number.
	base    store.View
	baseGen int64
	// scopes are the scopes the target changes; nil (not known until the
	// target is committed) routes every scope.
	scopes map[string]bool
	// target is the store revision of the target's commit; 0 until then.
	target uint64
}

var (
	_ stream.Router        = (*Replica)(nil)
	_ source.EtcdRollouts  = (*Replica)(nil)
	_ prometheus.Collector = (*Replica)(nil)
)

// New returns the rollouts of one replica. Give it to the source
// (source.EtcdOptions.Rollouts) and to the streams (stream.Options.Router),
// then Attach the streams and Run it.
func New(o Options) *Replica {
	r := &Replica{cli: o.Client, prefix: o.Prefix, id: o.ID, log: o.Logger, now: o.Now,
		interval: o.Interval, ttl: o.TTL, timeout: o.RequestTimeout, descs: newDescs()}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.interval <= 0 {
		r.interval = DefaultInterval
	}
	if r.ttl <= 0 {
		r.ttl = DefaultTTL
	}
	if r.timeout <= 0 {
		r.timeout = DefaultRequestTimeout
	}
	return r
}

// Attach gives the replica the streams it wakes when a stage changes and
// whose nodes' standing it works out.
func (r *Replica) Attach(s Streams) { r.streams.Store(&streamsBox{s}) }

// View is the stream.Router: a node of a scope the rollout changes is served
// the base generation unless the rollout's stage (or one before it) selects
// it (R23, R25).
func (r *Replica) View(scope string, node *corev3.Node, cur store.View) store.View {
	return r.view(scope, node, cur, true)
}

// Peek returns what View would serve the node now, without recording it as
// seen during the stage: the admin server's /debug/fleet asks it of every
// node of the fleet, most of them connected to other replicas, which must not
// count here as stage nodes gone away (admin.RolloutRouter).
func (r *Replica) Peek(scope string, node *corev3.Node, cur store.View) store.View {
	return r.view(scope, node, cur, false)
}

func (r *Replica) view(scope string, node *corev3.Node, cur store.View, record bool) store.View {
	rt := r.route.Load()
	if rt == nil || !rt.routing {
		return cur
	}
	if rt.scopes != nil && !rt.scopes[scope] {
		return cur
	}
	if rt.state.Selects(scope, node) {
		if record && rt.target != 0 {
			r.see(&rt.state, node.GetId())
		}
		return cur
	}
	return rt.base
}

// see records node ids as seen during the stage of st.
func (r *Replica) see(st *State, ids ...string) {
	set := r.seenSet.Load()
	if set != nil && set.id == st.ID && set.stage == st.Stage {
		known := true
		for _, id := range ids {
			if _, ok := set.ids.Load(id); !ok {
				known = false
				break
			}
		}
		if known {
			return
		}
	}
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	set = r.seenSet.Load()
	if set == nil || set.id != st.ID || set.stage != st.Stage {
		set = &seenSet{id: st.ID, stage: st.Stage}
		r.seenSet.Store(set)
	}
	for _, id := range ids {
		if _, ok := set.ids.Load(id); ok {
			continue
		}
		if set.n >= MaxSeen || set.bytes+len(id) > MaxSeenBytes {
			return
		}
		set.ids.Store(id, struct{}{})
		set.n, set.bytes = set.n+1, set.bytes+len(id)
	}
}

// seenGone returns how many nodes the replica saw during the stage of st,
// how many of them are not in present, and the ids of the first
// admin.MaxFleetGoneNodes of those, in order (ids longer than
// admin.MaxFleetGoneNodeBytes are counted, not named).
func (r *Replica) seenGone(st *State, present map[string]*admin.FleetRollout) (seen, gone int, named []string) {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	set := r.seenSet.Load()
	if set == nil || set.id != st.ID || set.stage != st.Stage {
		return 0, 0, nil
	}
	set.ids.Range(func(k, _ any) bool {
		id := k.(string)
		if _, ok := present[id]; !ok {
			gone++
			if len(id) <= admin.MaxFleetGoneNodeBytes {
				named = append(named, id)
			}
		}
		return true
	})
	slices.Sort(named)
	if len(named) > admin.MaxFleetGoneNodes {
		named = named[:admin.MaxFleetGoneNodes]
	}
	return set.n, gone, named
}

// Base is the source.EtcdRollouts method: the view of generation gen, when
// it is the base the replica routes to.
func (r *Replica) Base(gen int64) (store.View, bool) {
	rt := r.route.Load()
	if rt == nil || !rt.routing || rt.baseGen != gen {
		return store.View{}, false
	}
	return rt.base, true
}

// Committing is the source.EtcdRollouts method: the source is about to commit
// the target of s over a store that holds base.
func (r *Replica) Committing(s source.EtcdRollout, base store.View) {
	st, err := ParseState(s.Raw)
	if err != nil {
		r.log.Error("etcd rollout state refused: its target is served to every node", "key", source.EtcdRolloutStateKey(r.prefix), "err", err)
		return
	}
	r.mu.Lock()
	r.seen(st, s.ModRevision)
	old := r.route.Load()
	rt := &route{state: st, modRev: s.ModRevision, base: base, baseGen: s.Base}
	if old != nil && old.state.ID == st.ID && old.modRev > rt.modRev {
		rt.state, rt.modRev = old.state, old.modRev // the watch was first
	}
	rt.routing = rt.state.Phase != rollout.Promoted
	r.route.Store(rt)
	r.mu.Unlock()
	r.log.Info("etcd rollout: serving its stage the target, the other nodes the base",
		"rollout", st.ID, "base", st.Base, "target", st.Target, "stage", rt.state.stageName(rt.state.Stage), "phase", rt.state.Phase)
	r.wake(old, rt)
}

// Committed is the source.EtcdRollouts method: the source committed
// generation gen, listed whole with the rollout state s.
func (r *Replica) Committed(s source.EtcdRollout, gen string, cur store.View) {
	r.mu.Lock()
	old := r.route.Load()
	var rt *route
	if s.Active() && strconv.FormatInt(s.Target, 10) == gen && old != nil && old.state.ID == s.ID && old.routing {
		cp := *old
		cp.scopes = changedScopes(old.base, cur)
		cp.target = cur.Revision()
		rt = &cp
	} else {
		rt = &route{}
		if st, err := ParseState(s.Raw); err == nil && s.ModRevision != 0 {
			r.seen(st, s.ModRevision)
			rt.state, rt.modRev = st, s.ModRevision
		}
	}
	r.route.Store(rt)
	r.mu.Unlock()
	if rt.routing {
		r.log.Info("etcd rollout: target committed", "rollout", rt.state.ID, "revision", rt.target,
			"scopes", slices.Sorted(maps.Keys(rt.scopes)))
	}
	r.wake(old, rt)
}

// update adopts a state read by the watch of P/rollout/state: a new stage or
// phase of the rollout routed. A rollout that is not the one routed waits for
// the source to commit its target (Committing); a rollback goes on routing
// until the source commits the base (Committed), so that no node outside the
// stage is served the target meanwhile.
func (r *Replica) update(st State, modRev int64) {
	r.mu.Lock()
	r.seen(st, modRev)
	old := r.route.Load()
	if old == nil || old.state.ID != st.ID || modRev <= old.modRev {
		r.mu.Unlock()
		return
	}
	cp := *old
	cp.state, cp.modRev = st, modRev
	if st.Phase == rollout.Promoted {
		cp.routing = false
	}
	r.route.Store(&cp)
	r.mu.Unlock()
	if old.state.Stage != st.Stage || old.routing != cp.routing {
		r.log.Info("etcd rollout: stage", "rollout", st.ID, "stage", st.stageName(st.Stage), "phase", st.Phase)
	}
	r.wake(old, &cp)
}

// seen records st as the latest state if it is newer. Guarded by mu.
func (r *Replica) seen(st State, modRev int64) {
	if modRev > r.latestRev {
		r.latest, r.latestRev = st, modRev
	}
}

// wake wakes the streams whose view may differ between two routes.
func (r *Replica) wake(old, cur *route) {
	b := r.streams.Load()
	if b == nil {
		return
	}
	if old != nil && cur != nil && old.routing == cur.routing && old.state.Stage == cur.state.Stage &&
		old.state.ID == cur.state.ID && old.target == cur.target {
		return
	}
	scopes := map[string]bool{}
	for _, rt := range []*route{old, cur} {
		if rt == nil || !rt.routing {
			continue
		}
		if rt.scopes == nil {
			b.s.Wake("")
			return
		}
		maps.Copy(scopes, rt.scopes)
	}
	if len(scopes) > 0 {
		b.s.Wake(slices.Collect(maps.Keys(scopes))...)
	}
}

// changedScopes returns the scopes whose content differs between two views.
func changedScopes(a, b store.View) map[string]bool {
	out := map[string]bool{}
	digests := func(v store.View, scope string) map[string]string {
		m := map[string]string{}
		for t, tab := range v.Tables(scope) {
			if tab.Len() > 0 {
				m[t] = tab.Digest().Version()
			}
		}
		return m
	}
	seen := map[string]bool{}
	for _, s := range append(a.Scopes(), b.Scopes()...) {
		if seen[s] {
			continue
		}
		seen[s] = true
		if !maps.Equal(digests(a, s), digests(b, s)) {
			out[s] = true
		}
	}
	return out
}

// Standing is the fleet publisher's Options.Rollout: the standing of the
// nodes connected here that the stage of the rollout routed selects, against
// the store revision of the target (R20, R21: with the router, the view each
// node is served), by node id, and where they stand
// together (nil when no rollout is routed, or its target is not committed
// yet). Each NACK's detail is cut to rollout.MaxDetail bytes, and the sum
// names at most admin.MaxFleetNACKs of them. The sum also counts the nodes of
// the stage seen during it here (Seen, at most MaxSeen) and those of them no
// longer connected here (Gone): the decider counts a gone node as pending,
// and a stage is empty only when no replica saw a node of it.
func (r *Replica) Standing() (*admin.FleetReplicaRollout, map[string]*admin.FleetRollout) {
	rt := r.route.Load()
	b := r.streams.Load()
	if rt == nil || !rt.routing || rt.target == 0 || b == nil {
		return nil, nil
	}
	out := map[string]*admin.FleetRollout{}
	// One look over the streams per stage; the nodes of scopes the rollout
	// does not change are left out.
	for i := 0; i <= rt.state.Stage && i < len(rt.state.Plan.Stages); i++ {
		for _, n := range b.s.Applied(rt.target, rt.state.Plan.Stages[i].Select).Nodes {
			if rt.scopes[n.Scope] {
				out[n.NodeID] = &admin.FleetRollout{ID: rt.state.ID, Stage: rt.state.Stage, State: n.State.String(), Rejection: rollout.BoundRejection(n.Rejection)}
			}
		}
	}
	r.see(&rt.state, slices.Sorted(maps.Keys(out))...)
	sum := admin.SumStanding(rt.state.ID, rt.state.Stage, out)
	sum.Seen, sum.Gone, sum.GoneNodes = r.seenGone(&rt.state, out)
	return sum, out
}

// Status returns the newest rollout the replica knows of, with where the
// stage's nodes connected here stand (Applied) and the store revisions of
// its base and target here; false when it knows of none.
func (r *Replica) Status() (rollout.Status, bool) {
	r.mu.Lock()
	st := r.latest
	r.mu.Unlock()
	if st.ID == "" {
		return rollout.Status{}, false
	}
	out := rollout.Status{ID: st.ID, Phase: st.Phase, Plan: st.Plan, Stage: st.Stage,
		StartedAt: st.StartedAt, StageStartedAt: st.StageStartedAt, Events: st.Events}
	if rt := r.route.Load(); rt != nil && rt.state.ID == st.ID && rt.target != 0 {
		out.Base, out.Target = rt.base.Revision(), rt.target
		out.Scopes = slices.Sorted(maps.Keys(rt.scopes))
		_, nodes := r.Standing()
		out.Applied.Revision = rt.target
		for _, id := range slices.Sorted(maps.Keys(nodes)) {
			n := stream.NodeApplied{NodeID: id}
			switch nodes[id].State {
			case stream.NodeACKed.String():
				n.State = stream.NodeACKed
				out.Applied.ACKed++
			case stream.NodeNACKed.String():
				n.State = stream.NodeNACKed
				n.Rejection = nodes[id].Rejection
				out.Applied.NACKed++
			default:
				out.Applied.Pending++
			}
			out.Applied.Nodes = append(out.Applied.Nodes, n)
		}
	}
	return out, true
}

// Leader reports whether this replica decides the stages now.
func (r *Replica) Leader() bool { return r.leader.Load() }

var _ admin.RolloutRouter = (*Replica)(nil)
