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

// CommitPreparedAt commits changes as if they had been prepared while v was
// the store's state and another commit published the current one meanwhile.
func (s *Store) CommitPreparedAt(v View, changes ...Change) (Result, error) {
	return s.commit(v.r, CommitOptions{}, changes)
}
