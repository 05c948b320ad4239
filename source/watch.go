package source

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

// Run keeps the store equal to the directory until ctx ends, and returns nil
// then. It loads the directory first if Load was not called; if Load was
// called, it reads the directory once more, as after a change, so that a
// change made between Load and Run is not missed.
//
// It reloads the directory after it changes. Changes are debounced: a reload
// waits until nothing changed for the debounce period, so an editor's several
// writes, or a tool copying many files, make one commit. Every change of the
// directory or of a scope subdirectory counts, whatever the file, a change of
// permissions included (a file made readable): a reload reads the whole
// directory, and one that changes nothing is cheap (and commits nothing).
// Subdirectories created later are watched as they appear. A reload put off
// because a file is being written is tried again once it should be quiet.
//
// If the directory itself is removed or moved away, its watch goes with it:
// the source is then stale (Status().Stale) and Run polls for the directory,
// watching and reloading it as soon as it is back. If the directory cannot be
// watched at all (the system's limit of inotify instances), the source is
// stale until Run returns.
func (d *Dir) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.setStale("cannot watch it, changes are not applied until a restart: " + err.Error())
		<-ctx.Done()
		return nil
	}
	// The watch starts before the directory is read, so that no change made
	// while or after it is read goes unseen.
	if err := w.Add(d.dir); err == nil {
		d.syncWatches(w)
	}
	if d.onWatch != nil {
		d.onWatch(w)
	}
	d.reloading.Lock()
	attempted := d.attempted
	d.reloading.Unlock()
	if !attempted {
		_, _ = d.Load(ctx) // it logs and records its own errors
	}
	// After a Load made before the watch, the directory is read once more
	// (after the debounce period): a change made in between may keep a file's
	// size and time (cp -p, rsync -t, tar), and only its bytes tell. The
	// parse cache and the store's comparison make that read cheap when
	// nothing changed: it parses and commits nothing.
	d.watch(ctx, w, attempted)
	return nil
}

// watch is Run's loop: it reloads the directory after it changes (at once
// after a debounce period if changed is set), until ctx ends. It closes w.
func (d *Dir) watch(ctx context.Context, w *fsnotify.Watcher, changed bool) {
	debounce := d.debounce
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
		d.setStale(reason)
		if pollEvery == 0 {
			pollEvery = dirPollFirst
			poll.Reset(pollEvery)
		}
	}
	if !slices.Contains(w.WatchList(), d.dir) {
		lost(d.unwatchedReason())
	}
	var first time.Time // the first change not reloaded yet; zero when none
	if changed {
		first = time.Now()
		timer.Reset(debounce)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == d.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// The directory itself is gone, or moved away: fsnotify drops its
				// watch, and nothing will tell when it is back but a look.
				_ = w.Remove(d.dir)
				lost(d.unwatchedReason())
				continue
			}
			if ev.Has(fsnotify.Create) && filepath.Dir(ev.Name) == d.dir && !strings.HasPrefix(filepath.Base(ev.Name), ".") {
				// A new scope: watch it now, so files written into it are seen.
				// (Hidden directories are no scopes: the ..2025_01_01_… ones of a
				// ConfigMap volume are reached through its ..data link, which
				// changes in the directory itself.)
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					d.addWatch(w, ev.Name)
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
			d.log.Warn("watching the config directory", "dir", d.dir, "err", err)
			timer.Reset(debounce)
		case <-timer.C:
			first = time.Time{}
			if pollEvery != 0 {
				continue // the directory is not there: it is reloaded when it is back
			}
			_, err := d.tryReload(false) // it logs and records its own errors
			if nq, ok := errors.AsType[*NotQuietError](err); ok {
				timer.Reset(nq.retry)
				continue
			}
			d.syncWatches(w)
			if !slices.Contains(w.WatchList(), d.dir) {
				lost(d.unwatchedReason())
			}
		case <-poll.C:
			if err := w.Add(d.dir); err != nil {
				d.setStale(d.unwatchedReason())
				pollEvery = min(2*pollEvery, dirPollMax)
				poll.Reset(pollEvery)
				continue
			}
			pollEvery = 0
			d.syncWatches(w)
			d.setStale("")
			// Read it after a debounce period, as after a change: a directory
			// made again is usually filled right after, and an empty one read
			// in between would delete everything.
			timer.Reset(debounce)
		}
	}
}

// unwatchedReason says why the directory cannot be watched.
func (d *Dir) unwatchedReason() string {
	fi, err := os.Stat(d.dir)
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

// syncWatches watches the directory and each of its scope subdirectories. A
// removed directory drops out of the watch list by itself.
func (d *Dir) syncWatches(w *fsnotify.Watcher) {
	d.addWatch(w, d.dir)
	_, dirs, _ := listConfigDir(d.dir)
	for _, sub := range dirs {
		d.addWatch(w, sub)
	}
}

func (d *Dir) addWatch(w *fsnotify.Watcher, dir string) {
	if err := w.Add(dir); err != nil {
		d.log.Warn("cannot watch a config directory: its changes are not seen until another reload", "dir", dir, "err", err)
	}
}
