package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// Reload outcomes, as the metrics and the admin page name them.
const (
	reloadApplied   = "applied"   // the directory changed the store
	reloadUnchanged = "unchanged" // the directory was read and matched the store (dedup)
	reloadRejected  = "rejected"  // the directory was invalid, or left a reference dangling: the last good config is still served
	reloadHeld      = "held"      // the directory would delete too much (deleteGuard): the last good config is still served until confirmed
)

// configSource keeps the store equal to a config directory. Each reload reads the
// whole directory, once its files are quiet, and commits it as one atomic
// commit; if anything in it is invalid, too large, or a resource refers to one
// the directory does not define, it commits nothing, and if it would delete too
// much it waits for a confirmation: clients keep the last good config.
type configSource struct {
	dir string
	st  *store.Store
	log *slog.Logger
	// allowDangling serves a directory whose resources refer to resources it does
	// not define, with a warning for each, instead of refusing it
	// (--allow-dangling).
	allowDangling bool
	// limits bound the bytes a reload reads (--max-file-bytes, --max-dir-bytes).
	limits readLimits
	// guard holds back reloads that would delete too much.
	guard deleteGuard
	// now is the clock the files' modification times are compared with.
	now func() time.Time
	// afterRead, if not nil, is called with each file a reload has read; tests
	// use it to change the directory while a reload reads it.
	afterRead func(path string)
	// onReload reports each reload's outcome (metrics); nil for none.
	onReload func(outcome string, res store.Result)

	// reloading serialises reloads: a read and its commit must not interleave
	// with another's. It guards the fields below.
	reloading sync.Mutex
	// keepRestored is set while the store holds a snapshot restored at start
	// (--snapshot) that no reload has replaced yet. A directory without a single
	// resource is rejected then rather than applied: at start that is far more
	// likely a volume not mounted or populated yet than a decision to serve
	// nothing.
	keepRestored bool
	// quiet tells whether the files have been left alone long enough to be read
	// (its period is --debounce).
	quiet quietCheck
	// held is the reload the guard holds back, if any.
	held *heldReload

	mu    sync.Mutex
	state reloadState
}

// reloadState is how the config directory was last applied, for the admin page.
type reloadState struct {
	Dir string `json:"dir"`
	// Loaded is true once a reload was applied since the process started.
	Loaded      bool      `json:"loaded"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastApplied time.Time `json:"last_applied,omitzero"`
	// Revision is the store revision after the last good reload.
	Revision uint64 `json:"revision"`
	// Files and Scopes describe the config being served: resource files read and
	// resources per scope.
	Files  int            `json:"files"`
	Scopes map[string]int `json:"scopes"`
	// Rejected counts rejected reloads since start.
	Rejected int `json:"rejected_reloads"`
	// Errors are those of the last reload, one line each, file first; empty when
	// it was applied. LastRejected is when it was rejected.
	Errors       []string  `json:"errors,omitempty"`
	LastRejected time.Time `json:"last_rejected,omitzero"`
	// Warnings are the references the config being served makes to resources
	// it does not define: served with --allow-dangling only, refused otherwise.
	Warnings []string `json:"warnings,omitempty"`
	// Held is the reload the deletion guard holds back until it is confirmed
	// or the files change again; nil when none.
	Held *heldReload `json:"held,omitempty"`
	// Writing is the file a reload waits for, being written since WritingSince;
	// empty when no reload waits.
	Writing      string    `json:"writing,omitempty"`
	WritingSince time.Time `json:"writing_since,omitzero"`
	// Stale says why the directory is not watched (it was removed, or cannot be
	// watched), since StaleSince: its changes are not seen, and the last good
	// config is served. Empty while it is watched.
	Stale      string    `json:"stale,omitempty"`
	StaleSince time.Time `json:"stale_since,omitzero"`
}

func newConfigSource(dir string, st *store.Store, log *slog.Logger) *configSource {
	dir = filepath.Clean(dir)
	return &configSource{dir: dir, st: st, log: log, limits: defaultReadLimits, guard: defaultDeleteGuard, now: time.Now,
		state: reloadState{Dir: dir}}
}

// Reload reads the directory once its files are quiet and commits it whole. On
// error nothing changes: the error names every bad file, resource and field,
// or every dangling reference, and is logged, counted and kept for the admin
// page. A *heldError means the deletion guard holds the reload back; held
// reloads are recorded too.
func (s *configSource) Reload() (store.Result, error) {
	return s.ReloadWhenQuiet(context.Background(), false)
}

// ReloadWhenQuiet is Reload, waiting for the files to be quiet only until ctx
// ends (the error is then a *notQuietError). With confirm, a reload the guard
// held back is applied, if the directory still holds the content that was held.
func (s *configSource) ReloadWhenQuiet(ctx context.Context, confirm bool) (store.Result, error) {
	for {
		res, err := s.tryReload(confirm)
		nq, busy := errors.AsType[*notQuietError](err)
		if !busy {
			return res, err
		}
		t := time.NewTimer(nq.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, err
		case <-t.C:
		}
	}
}

// tryReload is one attempt at Reload: if the files are not quiet, or one
// changed while it was read, it returns a *notQuietError at once, having
// applied and recorded nothing; it should be tried again after its retry.
func (s *configSource) tryReload(confirm bool) (store.Result, error) {
	s.reloading.Lock()
	defer s.reloading.Unlock()
	cfg, err := s.readQuiet()
	if nq, busy := errors.AsType[*notQuietError](err); busy {
		s.waiting(nq)
		return store.Result{}, err
	}
	var warnings []string
	if err == nil {
		warnings, err = cfg.checkRefs(s.allowDangling)
	}
	var res store.Result
	if err == nil && s.keepRestored && cfg.count("") == 0 {
		err = errEmptyOverSnapshot
	}
	now := time.Now()
	if err == nil {
		if ds := s.guard.held(s.st.View(), cfg); len(ds) > 0 {
			if !confirm || s.held == nil || s.held.digest != cfg.digest {
				h := &heldReload{At: now, Deletions: ds, digest: cfg.digest}
				herr := &heldError{held: h, guard: s.guard, changed: confirm && s.held != nil}
				s.hold(h)
				return store.Result{}, herr
			}
			s.log.Warn("held reload confirmed", "dir", s.dir, "deletions", len(ds))
		}
	}
	if err == nil {
		// The store's scopes join the directory's, so that what is no longer in
		// the directory (or was restored from elsewhere) is deleted.
		res, err = s.st.Commit(cfg.changes(s.st.View().Scopes())...)
	}
	s.held = nil
	if err != nil {
		s.rejected(now, err)
		return res, err
	}
	s.keepRestored = false
	outcome := reloadUnchanged
	if res.Changed() {
		outcome = reloadApplied
	}
	scopes := make(map[string]int, len(cfg.scopes))
	for _, sc := range cfg.scopeNames() {
		scopes[sc] = cfg.count(sc)
	}
	s.mu.Lock()
	s.state.Loaded = true
	s.state.LastAttempt, s.state.LastApplied = now, now
	s.state.Revision = s.st.View().Revision()
	s.state.Files, s.state.Scopes = cfg.files, scopes
	s.state.Errors, s.state.Warnings = nil, warnings
	s.state.Held, s.state.Writing, s.state.WritingSince = nil, "", time.Time{}
	s.mu.Unlock()
	if s.onReload != nil {
		s.onReload(outcome, res)
	}
	if outcome == reloadApplied {
		s.log.Info("config applied", "dir", s.dir, "revision", res.Revision, "files", cfg.files,
			"scopes", cfg.scopeNames(), "resources", cfg.count(""),
			"set", res.Set, "deleted", res.Deleted, "unchanged", res.Unchanged)
		for _, w := range warnings {
			s.log.Warn("dangling reference", "warning", w)
		}
	} else {
		s.log.Debug("config unchanged", "dir", s.dir, "resources", cfg.count(""))
	}
	for _, b := range cfg.bootstraps {
		s.log.Debug("skipped a client bootstrap file", "file", b)
	}
	return res, nil
}

// readQuiet reads the directory if its files are quiet, and returns a
// *notQuietError if they are not, or if one changed while it was read.
// Guarded by reloading.
func (s *configSource) readQuiet() (*configDir, error) {
	files, _, err := listConfigDir(s.dir)
	if err != nil {
		return nil, err
	}
	before := stampsOf(files)
	if file, wait := s.quiet.check(before, s.now()); file != "" {
		return nil, &notQuietError{file: file, period: s.quiet.period, retry: wait}
	}
	cfg, readErr := readConfigFiles(s.dir, files, s.limits, s.afterRead)
	// Whatever was read, and whatever its errors, a file that changed while it
	// was read may have been read half-written: read it again later.
	after, _, err := listConfigDir(s.dir)
	if err != nil {
		return nil, err
	}
	if file := before.changed(stampsOf(after)); file != "" {
		return nil, &notQuietError{file: file, whileRead: true, period: s.quiet.period, retry: max(s.quiet.period, minRetry)}
	}
	return cfg, readErr
}

// minRetry is the least time before a reload put off because a file changed
// while it was read is tried again, with --debounce 0.
const minRetry = 50 * time.Millisecond

// waiting records a reload put off by a file being written. Guarded by
// reloading.
func (s *configSource) waiting(nq *notQuietError) {
	s.mu.Lock()
	first := s.state.Writing == ""
	if first {
		s.state.WritingSince = time.Now()
	}
	s.state.Writing = nq.file
	s.mu.Unlock()
	if first {
		s.log.Info("a config file is being written: the reload waits until the files are quiet", "dir", s.dir, "file", nq.file, "reason", nq.Error())
	} else {
		s.log.Debug("config files still being written", "dir", s.dir, "file", nq.file)
	}
}

// hold records and logs a reload the guard holds back. Guarded by reloading.
func (s *configSource) hold(h *heldReload) {
	s.held = h
	s.mu.Lock()
	s.state.LastAttempt = h.At
	s.state.Held = h
	s.state.Writing, s.state.WritingSince = "", time.Time{}
	s.mu.Unlock()
	if s.onReload != nil {
		s.onReload(reloadHeld, store.Result{})
	}
	attrs := []any{"dir", s.dir}
	for _, d := range h.Deletions {
		attrs = append(attrs, slog.Group("deletes", "scope", d.Scope, "type", d.Type, "deleted", d.Deleted, "of", d.Of))
	}
	s.log.Warn("config reload held: it would delete too much; the last good config is still served until `leanxds reload --confirm`, or the files change", attrs...)
}

// rejected records and logs a reload that failed.
func (s *configSource) rejected(at time.Time, err error) {
	lines := errorLines(err)
	s.mu.Lock()
	s.state.LastAttempt, s.state.LastRejected = at, at
	s.state.Rejected++
	s.state.Errors = lines
	s.state.Held, s.state.Writing, s.state.WritingSince = nil, "", time.Time{}
	loaded := s.state.Loaded
	s.mu.Unlock()
	if s.onReload != nil {
		s.onReload(reloadRejected, store.Result{})
	}
	msg := "config rejected: nothing is served yet"
	switch {
	case loaded:
		msg = "config rejected: the last good config is still served"
	case s.keepRestored:
		msg = "config rejected: the restored snapshot is still served"
	}
	s.log.Error(msg, "dir", s.dir, "errors", len(lines))
	for _, e := range flatten(err) {
		attrs := []any{"error", e.Error()}
		switch e := e.(type) {
		case *resources.LoadError:
			attrs = append(attrs, "file", e.File)
		case *danglingRef:
			attrs = append(attrs, "file", e.file)
		}
		s.log.Error("config error", attrs...)
	}
}

// errEmptyOverSnapshot rejects a directory without resources while the store
// holds a restored snapshot (keepRestored).
var errEmptyOverSnapshot = errors.New("the directory holds no resource: the snapshot restored at start is served until it holds some")

// keepSnapshot tells the source that the store holds a restored snapshot: until
// a reload is applied, a directory without resources does not replace it.
func (s *configSource) keepSnapshot() {
	s.reloading.Lock()
	s.keepRestored = true
	s.reloading.Unlock()
}

// State returns how the directory was last applied.
func (s *configSource) State() reloadState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.Errors = append([]string(nil), st.Errors...)
	return st
}

// setStale records that the directory is not watched, and why; "" records
// that it is watched again.
func (s *configSource) setStale(reason string) {
	s.mu.Lock()
	was := s.state.Stale
	s.state.Stale = reason
	switch {
	case reason != "" && was == "":
		s.state.StaleSince = time.Now()
	case reason == "":
		s.state.StaleSince = time.Time{}
	}
	s.mu.Unlock()
	switch {
	case reason != "" && was == "":
		s.log.Error("the config directory is not watched: its changes are not seen, the last good config is served", "dir", s.dir, "reason", reason)
	case reason == "" && was != "":
		s.log.Info("the config directory is watched again", "dir", s.dir)
	}
}

// errorLines formats a reload error one problem a line: a *resources.LoadError
// already writes one line per violation.
func errorLines(err error) []string {
	var out []string
	for _, e := range flatten(err) {
		out = append(out, strings.Split(e.Error(), "\n")...)
	}
	return out
}
