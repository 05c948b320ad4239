package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxDebounceWaits bounds how long a stream of changes can put a reload off: a
// reload is tried at most this many debounce periods after the first change,
// even if files keep changing. (It still reads nothing until the resource files
// are quiet: see quietCheck.)
const maxDebounceWaits = 10

// While the directory is missing (removed, or not mounted yet) or cannot be
// watched, Watch checks for it every dirPollFirst, backing off to dirPollMax.
const (
	dirPollFirst = 100 * time.Millisecond
	dirPollMax   = 5 * time.Second
)

// Watch reloads the directory after it changes, until ctx ends. Changes are
// debounced: a reload waits until nothing changed for the debounce period, so an
// editor's several writes, or a tool copying many files, make one commit. Every
// change of the directory or of a scope subdirectory counts, whatever the file,
// a change of permissions included (a file made readable): a reload reads the
// whole directory, and one that changes nothing is cheap (and commits nothing).
// Subdirectories created later are watched as they appear. A reload put off
// because a file is being written is tried again once it should be quiet.
//
// If the directory itself is removed or moved away, its watch goes with it:
// the source is then stale (State().Stale) and Watch polls for the directory,
// watching and reloading it as soon as it is back.
//
// Watch closes w, from newWatcher, when it returns.
func (s *configSource) Watch(ctx context.Context, w *fsnotify.Watcher, debounce time.Duration) {
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	defer poll.Stop()
	// pollEvery is the time until the next look for the directory; 0 while it
	// is watched.
	var pollEvery time.Duration
	lost := func(reason string) {
		s.setStale(reason)
		if pollEvery == 0 {
			pollEvery = dirPollFirst
			poll.Reset(pollEvery)
		}
	}
	if !slices.Contains(w.WatchList(), s.dir) {
		lost(s.unwatchedReason())
	}
	var first time.Time // the first change not reloaded yet; zero when none
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == s.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// The directory itself is gone, or moved away: fsnotify drops its
				// watch, and nothing will tell when it is back but a look.
				_ = w.Remove(s.dir)
				lost(s.unwatchedReason())
				continue
			}
			if ev.Has(fsnotify.Create) && filepath.Dir(ev.Name) == s.dir && !strings.HasPrefix(filepath.Base(ev.Name), ".") {
				// A new scope: watch it now, so files written into it are seen.
				// (Hidden directories are no scopes: the ..2025_01_01_… ones of a
				// ConfigMap volume are reached through its ..data link, which
				// changes in the directory itself.)
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
			if pollEvery != 0 {
				continue // the directory is not there: it is reloaded when it is back
			}
			_, err := s.tryReload(false) // it logs and records its own errors
			if nq, ok := errors.AsType[*notQuietError](err); ok {
				timer.Reset(nq.retry)
				continue
			}
			s.syncWatches(w)
			if !slices.Contains(w.WatchList(), s.dir) {
				lost(s.unwatchedReason())
			}
		case <-poll.C:
			if err := w.Add(s.dir); err != nil {
				s.setStale(s.unwatchedReason())
				pollEvery = min(2*pollEvery, dirPollMax)
				poll.Reset(pollEvery)
				continue
			}
			pollEvery = 0
			s.syncWatches(w)
			s.setStale("")
			// Read it after a debounce period, as after a change: a directory
			// made again is usually filled right after, and an empty one read
			// in between would delete everything.
			timer.Reset(debounce)
		}
	}
}

// unwatchedReason says why the directory cannot be watched.
func (s *configSource) unwatchedReason() string {
	fi, err := os.Stat(s.dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "the directory does not exist"
	case err != nil:
		return err.Error()
	case !fi.IsDir():
		return "not a directory"
	}
	return "the directory was removed or moved"
}

// newWatcher returns a watcher of the directory and its scope subdirectories,
// for Watch. It is made before Watch runs so that no change made after it
// returns goes unseen, and so that a failure (the system's limit of inotify
// instances) is reported at once. A directory that cannot be watched yet (it
// does not exist) is not an error: Watch looks for it until it can.
func (s *configSource) newWatcher() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(s.dir); err == nil {
		s.syncWatches(w)
	}
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
