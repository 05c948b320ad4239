package load

import (
	"context"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	adsSotW  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	adsDelta = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

var adsDesc = grpc.StreamDesc{StreamName: "ADS", ServerStreams: true, ClientStreams: true}

// typeState is what a client keeps of one type.
type typeState struct {
	// version and nonce are those of the newest response of the type.
	version, nonce string
	// sub is the subscription: the names an EDS or RDS request asks for.
	sub *nameSet
	// held are the resources a delta client holds of a full-state type (CDS,
	// LDS); count is how many resources the newest SotW response carried.
	held  *nameSet
	count int
	// requested: a request of the type was sent; acked: a response was ACKed.
	requested, acked bool
	// ackPending: the newest response is to be ACKed; subPending: the
	// subscription changed and is to be sent.
	ackPending, subPending bool
	// sentSub is the subscription the server was last told (delta diffs against it).
	sentSub *nameSet
}

// client is one simulated Envoy on one ADS stream. It behaves as Envoy does at
// start: wildcard CDS; then EDS for every cluster it was sent; once every
// cluster has its endpoints, wildcard LDS; then RDS for every route
// configuration the listeners use. It ACKs every response.
type client struct {
	w  *worker
	id int

	// mu guards what follows against the worker's final check; only the
	// client's goroutine writes it.
	mu         sync.Mutex
	st         [numTypes]typeState
	got        bits // EDS and RDS resources received at least once
	ldsStarted bool
	err        error

	ready   atomic.Bool
	readyAt int64 // unix nanoseconds

	// Probe tracking: bytes received since the probe was armed, and when the
	// probed resource arrived (hitSeq is the probe's seq once it has).
	armSeq   int64
	acc      int64
	hitSeq   atomic.Int64
	hitAt    int64
	hitBytes int64
}

func (c *client) run(ctx context.Context, cc *grpc.ClientConn) {
	method := adsSotW
	if c.w.cfg.Delta {
		method = adsDelta
	}
	s, err := cc.NewStream(ctx, &adsDesc, method, grpc.ForceCodecV2(codec{}), grpc.MaxCallRecvMsgSize(1<<30))
	if err != nil {
		c.fail(err)
		return
	}
	nodeID := "bench-" + strconv.Itoa(c.id)
	c.mu.Lock()
	c.st[tCDS].requested = true
	c.mu.Unlock()
	var first outMsg
	if c.w.cfg.Delta {
		first.head = deltaRequest(tCDS, "", nodeID, nil, nil) // legacy wildcard (D4)
	} else {
		first.head = sotwRequest(tCDS, "", "", nodeID) // wildcard (R11)
	}
	if err := s.SendMsg(&first); err != nil {
		c.fail(err)
		return
	}
	// Requests go out from a goroutine of their own, so that a server slow to
	// read requests never stops this client from reading responses (as Envoy,
	// which never blocks on a write, and grpc-go's xDS client behave). A client
	// blocked in a send while the server is blocked sending to it would otherwise
	// stall both until TCP gives up on the connection.
	send := make(chan []outMsg, 16)
	go func() {
		for {
			select {
			case msgs := <-send:
				for i := range msgs {
					if err := s.SendMsg(&msgs[i]); err != nil {
						if ctx.Err() == nil {
							c.fail(err)
						}
						return
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		if err := s.RecvMsg(c); err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		if msgs := c.flush(); len(msgs) > 0 {
			select {
			case send <- msgs:
			case <-ctx.Done():
				return
			}
		}
	}
}

// fail records the first error of the client's stream.
func (c *client) fail(err error) {
	c.mu.Lock()
	first := c.err == nil
	if first {
		c.err = err
	}
	c.mu.Unlock()
	if first {
		c.w.failed(c, err)
	}
}

// consume applies one response, in place in the receive buffer.
func (c *client) consume(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var typeB, version, nonce []byte
	var h maphash.Hash // the content: every field but the stream's own nonce
	h.SetSeed(c.w.seed)
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num != 5 {
			h.WriteByte(byte(num))
			h.Write(v)
			h.WriteByte(byte(x))
		}
		if typ != protowire.BytesType {
			return nil
		}
		switch {
		case num == 1:
			version = v
		case num == 4:
			typeB = v
		case num == 5:
			nonce = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	t := typeIndex(typeB)
	if t < 0 {
		return errType(typeB)
	}
	if !c.w.cfg.Delta {
		return c.consumeSotW(b, t, version, nonce, c.w.parse(b, t, h.Sum64()))
	}

	p := c.w.probe.Load()
	track := p != nil && c.hitSeq.Load() != p.Seq
	if track {
		if c.armSeq != p.Seq {
			c.armSeq, c.acc = p.Seq, 0
		}
		c.acc += int64(len(b))
	}
	hit := false
	check := func(name []byte) {
		if track && !hit && t == p.typ && string(name) == p.Name {
			hit = true
		}
	}

	reg := c.w.reg
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	ids := sc.idx[:0]
	var removed []int32
	n := 0
	resource := func(name, value []byte) {
		n++
		switch t {
		case tCDS:
			cname, eds := clusterEDSName(value)
			if name == nil {
				name = cname
			}
			check(name)
			if eds != nil {
				e := reg.id(eds)
				if c.w.cfg.Delta {
					ci := reg.id(name)
					reg.setEDS(ci, e)
					ids = append(ids, ci)
				} else {
					ids = append(ids, e)
				}
			}
		case tLDS:
			var routes []int32
			lname := listenerRoutes(value, func(r []byte) { routes = append(routes, reg.id(r)) })
			if name == nil {
				name = lname
			}
			check(name)
			if c.w.cfg.Delta {
				li := reg.id(name)
				reg.setRoutes(li, routes)
				ids = append(ids, li)
			} else {
				ids = append(ids, routes...)
			}
		case tEDS, tRDS:
			if name == nil {
				name = stringField(value, 1) // cluster_name, name
			}
			check(name)
			c.got.set(reg.id(name))
		}
	}
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch {
		case num == 2 && !c.w.cfg.Delta: // resources: Any
			_, value := anyValue(v)
			resource(nil, value)
		case num == 2: // resources: Resource{name 3, resource 2}
			var name, value []byte
			_ = fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch {
				case num == 3 && typ == protowire.BytesType:
					name = v
				case num == 2 && typ == protowire.BytesType:
					_, value = anyValue(v)
				}
				return nil
			})
			resource(name, value)
		case num == 6 && c.w.cfg.Delta: // removed_resources
			if i := reg.lookup(string(v)); i >= 0 {
				removed = append(removed, i)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	ts := &c.st[t]
	ts.version = reg.version(version)
	ts.nonce = string(nonce)
	ts.ackPending = true
	if t == tCDS || t == tLDS {
		dep := tEDS
		if t == tLDS {
			dep = tRDS
		}
		var sub *nameSet
		if c.w.cfg.Delta {
			ts.held = c.applyDelta(ts.held, ids, removed)
			ts.count = len(ts.held.ids)
			sub = c.dependents(t, ts.held, sc)
		} else {
			ts.count = n
			sub = reg.set(ids)
		}
		if d := &c.st[dep]; d.sub != sub {
			d.sub, d.subPending = sub, true
		}
	}
	sc.idx = ids[:0]
	if hit {
		c.hitAt, c.hitBytes = time.Now().UnixNano(), c.acc
		c.hitSeq.Store(p.Seq)
		c.w.hits.Add(1)
	}
	return nil
}

// consumeSotW applies a SotW response already parsed (pr).
func (c *client) consumeSotW(b []byte, t int, version, nonce []byte, pr *parsed) error {
	p := c.w.probe.Load()
	if p != nil && c.hitSeq.Load() != p.Seq {
		if c.armSeq != p.Seq {
			c.armSeq, c.acc = p.Seq, 0
		}
		c.acc += int64(len(b))
		if t == p.typ && slices.Contains(pr.names, p.id) {
			c.hitAt, c.hitBytes = time.Now().UnixNano(), c.acc
			c.hitSeq.Store(p.Seq)
			c.w.hits.Add(1)
		}
	}
	if t == tEDS || t == tRDS {
		for _, id := range pr.names {
			c.got.set(id)
		}
	}
	ts := &c.st[t]
	ts.version = c.w.reg.version(version)
	ts.nonce = string(nonce)
	ts.ackPending = true
	if t == tCDS || t == tLDS {
		ts.count = len(pr.names)
		dep := tEDS
		if t == tLDS {
			dep = tRDS
		}
		if d := &c.st[dep]; d.sub != pr.deps {
			d.sub, d.subPending = pr.deps, true
		}
	}
	return nil
}

// parsed is what a SotW response says, shared by every client sent the same
// content: a fleet is sent the same bytes, parsed once per worker.
type parsed struct {
	// names number the resources of the response, in its order.
	names []int32
	// deps are the EDS services of a CDS response's clusters, or the route
	// configurations of an LDS response's listeners.
	deps *nameSet
}

// maxParsed bounds the worker's cache of parsed responses.
const maxParsed = 256

// parse returns the parse of a SotW response of type t whose content hashes to key.
func (w *worker) parse(b []byte, t int, key uint64) *parsed {
	w.parsedMu.Lock()
	pr := w.parsed[key]
	w.parsedMu.Unlock()
	if pr != nil {
		return pr
	}
	pr = &parsed{}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	deps := sc.idx[:0]
	_ = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 2 || typ != protowire.BytesType {
			return nil
		}
		_, value := anyValue(v)
		var name []byte
		switch t {
		case tCDS:
			var eds []byte
			name, eds = clusterEDSName(value)
			if eds != nil {
				deps = append(deps, w.reg.id(eds))
			}
		case tLDS:
			name = listenerRoutes(value, func(r []byte) { deps = append(deps, w.reg.id(r)) })
		default:
			name = stringField(value, 1) // cluster_name, name
		}
		pr.names = append(pr.names, w.reg.id(name))
		return nil
	})
	if t == tCDS || t == tLDS {
		pr.deps = w.reg.set(deps)
	}
	sc.idx = deps[:0]
	w.parsedMu.Lock()
	if len(w.parsed) >= maxParsed {
		clear(w.parsed)
	}
	w.parsed[key] = pr
	w.parsedMu.Unlock()
	return pr
}

// applyDelta returns held with the names numbered ids added and removed taken out.
func (c *client) applyDelta(held *nameSet, ids, removed []int32) *nameSet {
	if held == nil {
		held = emptySet
	}
	all := make([]int32, 0, len(held.ids)+len(ids))
	for _, i := range held.ids {
		if !containsID(removed, i) {
			all = append(all, i)
		}
	}
	for _, i := range ids {
		if !containsID(removed, i) {
			all = append(all, i)
		}
	}
	return c.w.reg.set(all)
}

func containsID(s []int32, i int32) bool {
	for _, x := range s {
		if x == i {
			return true
		}
	}
	return false
}

// dependents returns the EDS services of the held clusters or the route
// configurations of the held listeners.
func (c *client) dependents(t int, held *nameSet, sc *scratch) *nameSet {
	reg := c.w.reg
	out := make([]int32, 0, len(held.ids))
	reg.mu.RLock()
	for _, i := range held.ids {
		if t == tCDS {
			if e, ok := reg.edsOf[i]; ok {
				out = append(out, e)
			}
		} else {
			out = append(out, reg.routesOf[i]...)
		}
	}
	reg.mu.RUnlock()
	return reg.set(out)
}

// flush returns the requests the newest response calls for: its ACK, then any
// change of subscription, then LDS once the clusters are warm, as Envoy does.
func (c *client) flush() []outMsg {
	c.mu.Lock()
	var out []outMsg
	acks := 0
	for t := range numTypes {
		ts := &c.st[t]
		if ts.ackPending {
			ts.ackPending, ts.acked = false, true
			acks++
			out = append(out, c.request(t, ts.nonce, false))
		}
		if ts.subPending {
			ts.subPending = false
			if !ts.requested && len(ts.sub.ids) == 0 {
				continue // nothing to ask for yet
			}
			ts.requested = true
			out = append(out, c.request(t, ts.nonce, true))
		}
	}
	if !c.ldsStarted && c.st[tCDS].acked && c.warm(tEDS) {
		c.ldsStarted = true
		c.st[tLDS].requested = true
		out = append(out, c.request(tLDS, "", true))
	}
	if !c.ready.Load() && c.st[tLDS].acked && c.warm(tEDS) && c.warm(tRDS) {
		c.readyAt = time.Now().UnixNano()
		c.ready.Store(true)
		c.w.readyCount.Add(1)
	}
	c.mu.Unlock()
	c.w.acked(acks)
	return out
}

// warm reports whether every subscribed resource of an EDS or RDS type arrived.
func (c *client) warm(t int) bool {
	ts := &c.st[t]
	if ts.sub == nil {
		return false
	}
	return len(ts.sub.ids) == 0 || (ts.acked && c.got.covers(ts.sub))
}

// request builds a request of type t: an ACK of nonce, or a subscription (sub).
func (c *client) request(t int, nonce string, sub bool) outMsg {
	ts := &c.st[t]
	if !c.w.cfg.Delta {
		m := outMsg{head: sotwRequest(t, ts.version, nonce, "")}
		if nonce == "" {
			m.head = sotwRequest(t, "", "", "")
		}
		if (t == tEDS || t == tRDS) && ts.sub != nil {
			m.tail = ts.sub.sotw // SotW repeats the whole subscription every time
		}
		return m
	}
	if !sub {
		return outMsg{head: deltaRequest(t, nonce, "", nil, nil)}
	}
	if t == tCDS || t == tLDS {
		return outMsg{head: deltaRequest(t, "", "", nil, nil)}
	}
	prev := ts.sentSub
	if prev == nil {
		prev = emptySet
	}
	added, removed := c.w.reg.diff(prev, ts.sub)
	ts.sentSub = ts.sub
	return outMsg{head: deltaRequest(t, "", "", added, removed)}
}
