package store

import (
	"slices"
	"sync"
)

// Watcher receives a signal on C after each commit that changes one of the
// (scope, type) pairs it watches. Signals coalesce: C holds at most one, so a
// watcher that is slow to read sees one signal for many commits and never slows the
// store down. On a signal, read the store's View and compare revisions.
type Watcher struct {
	// C receives a value after a commit changes a watched (scope, type).
	C <-chan struct{}
	c chan struct{}
	s *Store
	// keys is what this watcher watches (a few pairs: a slice costs less than a
	// map); guarded by s.watch.mu.
	keys []key
}

// watchers is the store's registry of watchers and its notifier.
type watchers struct {
	mu    sync.RWMutex
	byKey map[key]map[*Watcher]struct{}

	// pendMu guards pending and running: the keys changed by commits that the
	// notifier goroutine has not signalled yet, and whether it runs.
	pendMu  sync.Mutex
	pending map[key]struct{}
	running bool
}

// NewWatcher returns a watcher that watches nothing yet.
func (s *Store) NewWatcher() *Watcher {
	c := make(chan struct{}, 1)
	return &Watcher{C: c, c: c, s: s}
}

// Watch adds (scope, typeURL) to what the watcher watches. Watching twice is the
// same as once.
func (w *Watcher) Watch(scope, typeURL string) {
	k := key{scope, typeURL}
	ws := &w.s.watch
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.byKey == nil {
		ws.byKey = make(map[key]map[*Watcher]struct{})
	}
	set := ws.byKey[k]
	if set == nil {
		set = make(map[*Watcher]struct{})
		ws.byKey[k] = set
	}
	set[w] = struct{}{}
	if !slices.Contains(w.keys, k) {
		w.keys = append(w.keys, k)
	}
}

// Unwatch removes (scope, typeURL) from what the watcher watches.
func (w *Watcher) Unwatch(scope, typeURL string) {
	ws := &w.s.watch
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.unwatchLocked(key{scope, typeURL})
}

// Close stops every watch of the watcher.
func (w *Watcher) Close() {
	ws := &w.s.watch
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for len(w.keys) > 0 {
		w.unwatchLocked(w.keys[len(w.keys)-1])
	}
}

func (w *Watcher) unwatchLocked(k key) {
	ws := &w.s.watch
	if set := ws.byKey[k]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(ws.byKey, k)
		}
	}
	if i := slices.Index(w.keys, k); i >= 0 {
		w.keys = slices.Delete(w.keys, i, i+1)
	}
}

// notify queues the changed keys for the notifier goroutine, starting it when it
// is not running. The goroutine exits when nothing is pending, so an idle store
// holds no goroutine.
func (ws *watchers) notify(changed []key) {
	ws.pendMu.Lock()
	defer ws.pendMu.Unlock()
	if ws.pending == nil {
		ws.pending = make(map[key]struct{}, len(changed))
	}
	for _, k := range changed {
		ws.pending[k] = struct{}{}
	}
	if !ws.running {
		ws.running = true
		go ws.run()
	}
}

func (ws *watchers) run() {
	for {
		ws.pendMu.Lock()
		keys := ws.pending
		ws.pending = nil
		if len(keys) == 0 {
			ws.running = false
			ws.pendMu.Unlock()
			return
		}
		ws.pendMu.Unlock()

		ws.mu.RLock()
		if len(keys) == 1 {
			for k := range keys {
				for w := range ws.byKey[k] {
					w.signal()
				}
			}
		} else {
			// A watcher of several changed pairs is signalled once.
			woken := make(map[*Watcher]struct{})
			for k := range keys {
				for w := range ws.byKey[k] {
					if _, done := woken[w]; !done {
						woken[w] = struct{}{}
						w.signal()
					}
				}
			}
		}
		ws.mu.RUnlock()
	}
}

// Signal sends the watcher a signal, as a commit that changes what it watches
// would (signals coalesce).
func (w *Watcher) Signal() { w.signal() }

func (w *Watcher) signal() {
	select {
	case w.c <- struct{}{}:
	default: // a signal is already pending: coalesce
	}
}
