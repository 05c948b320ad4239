package store

import "runtime"

// WaitNotified waits until the notifier has signalled every commit so far.
func (s *Store) WaitNotified() {
	for {
		s.watch.pendMu.Lock()
		idle := !s.watch.running
		s.watch.pendMu.Unlock()
		if idle {
			return
		}
		runtime.Gosched()
	}
}
