package machine

import (
	"runtime"
	"sync"
	"unsafe"
	"weak"

	"github.com/leanxds/leanxds/store"
)

// Answers shared between streams
//
// After a commit, every stream of a fleet asks the same questions of the same two
// tables: the one it was last sent and the new one. The answers that depend on
// those tables alone (or on them and an interned subscription) are computed by
// the first stream and remembered here, so a push to N streams does the table
// work once, not N times. Every answer is read-only.
//
// A memo keeps none of the tables and subscriptions its answers are about
// alive: it knows them by address, confirmed by weak pointers, and forgets an
// answer when the newest table it is about is collected. It is small, and
// forgets everything when full.

// question is what an answer depends on: an interned subscription and the
// tables old, cur and, for EDS, the scope's clusters; cur is always set.
type question struct {
	set           *nameSet
	old, cur, cds *store.Table
}

// questionKey is a question by the addresses of its parts.
type questionKey struct{ set, old, cur, cds uintptr }

func (q question) key() questionKey {
	return questionKey{
		set: uintptr(unsafe.Pointer(q.set)),
		old: uintptr(unsafe.Pointer(q.old)),
		cur: uintptr(unsafe.Pointer(q.cur)),
		cds: uintptr(unsafe.Pointer(q.cds)),
	}
}

// answer is a remembered answer, with weak pointers to the parts of its question:
// a collected object's address may be reused by another.
type answer[V any] struct {
	set           weak.Pointer[nameSet]
	old, cur, cds weak.Pointer[store.Table]
	v             V
}

func (a *answer[V]) answers(q question) bool {
	return a.cur.Value() == q.cur && a.old.Value() == q.old && a.cds.Value() == q.cds && a.set.Value() == q.set
}

type memo[V any] struct {
	mu sync.Mutex
	m  map[questionKey]*answer[V]
	// watched are the tables answers were about (their cur), by address. A
	// table stays here while it lives, however often its answers come and go, so
	// that each is watched once: a cleanup drops its answers when it is collected.
	watched map[uintptr]weak.Pointer[store.Table]
}

// maxAnswers bounds each memo; past it, the memo starts afresh.
const maxAnswers = 256

// get returns the answer to q, which compute computes on a miss.
func (p *memo[V]) get(q question, compute func() V) V {
	if q.cur == nil {
		return compute()
	}
	k := q.key()
	p.mu.Lock()
	a := p.m[k]
	p.mu.Unlock()
	if a != nil && a.answers(q) {
		return a.v
	}
	v := compute()
	a = &answer[V]{set: weak.Make(q.set), old: weak.Make(q.old), cur: weak.Make(q.cur), cds: weak.Make(q.cds), v: v}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxAnswers {
		p.m = make(map[questionKey]*answer[V])
	}
	p.m[k] = a
	if w, ok := p.watched[k.cur]; !ok || w.Value() != q.cur {
		if p.watched == nil {
			p.watched = make(map[uintptr]weak.Pointer[store.Table])
		}
		p.watched[k.cur] = a.cur
		runtime.AddCleanup(q.cur, p.forget, k.cur)
	}
	return v
}

// forget drops the answers about the table at cur once it has been collected.
func (p *memo[V]) forget(cur uintptr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, a := range p.m {
		if k.cur == cur && a.cur.Value() == nil {
			delete(p.m, k)
		}
	}
	if w := p.watched[cur]; w.Value() == nil {
		delete(p.watched, cur)
	}
}

// size reports how many answers the memo holds and how many tables it
// watches, for tests.
func (p *memo[V]) size() (answers, tables int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m), len(p.watched)
}
