package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxDebounceWaits bounds how long a stream of changes can put a reload off: a
// reload is tried at most this many debounce periods after the first change,
// even if files keep changing. (It still reads nothing until the resource files
// are quiet: see quietCheck.)
const maxDebounceWaits = 10

// Watch reloads the directory after it changes, until ctx ends. Changes are
// debounced: a reload waits until nothing changed for the debounce period, so an
// editor's several writes, or a tool copying many files, make one commit. Every
// change of the directory or of a scope subdirectory counts, whatever the file,
// a change of permissions included (a file made readable): a reload reads the
// whole directory, and one that changes nothing is cheap (and commits nothing).
// Subdirectories created later are watched as they appear. A reload put off
// because a file is being written is tried again once it should be quiet.
// Watch closes w, from newWatcher, when it returns.
func (s *configSource) Watch(ctx context.Context, w *fsnotify.Watcher, debounce time.Duration) {
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time // the first change not reloaded yet; zero when none
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) && filepath.Dir(ev.Name) == filepath.Clean(s.dir) {
				// A new scope: watch it now, so files written into it are seen.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					s.addWatch(w, ev.Name)
				}
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			delay := debounce
			if limit := time.Duration(maxDebounceWaits) * debounce; now.Sub(first)+delay > limit {
				delay = max(0, limit-now.Sub(first))
			}
			timer.Reset(delay)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			// An overflow loses events, not the directory: the next reload reads it all.
			s.log.Warn("watching the config directory", "dir", s.dir, "err", err)
			timer.Reset(debounce)
		case <-timer.C:
			first = time.Time{}
			_, err := s.tryReload(false) // it logs and records its own errors
			if nq, ok := errors.AsType[*notQuietError](err); ok {
				timer.Reset(nq.retry)
				continue
			}
			s.syncWatches(w)
		}
	}
}

// newWatcher returns a watcher of the directory and its scope subdirectories,
// for Watch. It is made before Watch runs so that no change made after it
// returns goes unseen, and so that a failure (the system's limit of watches) is
// reported at once.
func (s *configSource) newWatcher() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(s.dir); err != nil {
		w.Close()
		return nil, err
	}
	s.syncWatches(w)
	return w, nil
}

// syncWatches watches the directory and each of its scope subdirectories. A
// removed directory drops out of the watch list by itself.
func (s *configSource) syncWatches(w *fsnotify.Watcher) {
	s.addWatch(w, s.dir)
	_, dirs, _ := listConfigDir(s.dir)
	for _, d := range dirs {
		s.addWatch(w, d)
	}
}

func (s *configSource) addWatch(w *fsnotify.Watcher, dir string) {
	if err := w.Add(dir); err != nil {
		s.log.Warn("cannot watch a config directory: its changes are not seen until another reload", "dir", dir, "err", err)
	}
}
