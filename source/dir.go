package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/leanxds/leanxds/resources"
	"github.com/leanxds/leanxds/store"
)

// Defaults of DirOptions.
const (
	// DefaultMaxFileBytes and DefaultMaxDirBytes are far above a real config
	// (the edge example is 7 KiB; 10,000 clusters like its three are about
	// 4 MiB), far below what would exhaust a container's memory (a file decodes
	// to a few times its size).
	DefaultMaxFileBytes int64 = 16 << 20
	DefaultMaxDirBytes  int64 = 256 << 20
	// DefaultDebounce is how long the files must be left alone before a reload
	// reads them.
	DefaultDebounce = 200 * time.Millisecond
	// DefaultMaxDeleteFraction and DefaultDeleteGuardMin: a reload that would
	// delete more than half of a type's resources in a scope, and at least 10
	// of them, is held back.
	DefaultMaxDeleteFraction = 0.5
	DefaultDeleteGuardMin    = 10
)

// DirOptions configure a Dir. The zero value is the defaults.
type DirOptions struct {
	// Logger receives what the source does; nil discards it.
	Logger *slog.Logger
	// AllowDangling serves a directory whose resources refer to resources their
	// scope does not define, with a warning for each, instead of refusing it
	// (leanxds serve --allow-dangling).
	AllowDangling bool
	// MaxFileBytes is the size of the largest resource file read, and
	// MaxDirBytes the most the resource files of the directory, its scopes
	// included, may hold together: a reload over either is rejected before
	// anything is read (--max-file-bytes, --max-dir-bytes). 0 is
	// DefaultMaxFileBytes (16 MiB) and DefaultMaxDirBytes (256 MiB).
	MaxFileBytes int64
	MaxDirBytes  int64
	// Debounce is how long the directory must be quiet after a change before it
	// is reloaded, and how long a file must be left alone before it is read
	// (--debounce). 0 is DefaultDebounce (200ms); negative reads at once.
	Debounce time.Duration
	// MaxDeleteFraction is the share of a type's resources in a scope a reload
	// may delete before it is held back until confirmed, and DeleteGuardMin the
	// fewest deletions that are held (--max-delete-fraction,
	// --delete-guard-min). A MaxDeleteFraction of 0 is
	// DefaultMaxDeleteFraction (0.5), 1 or more or a negative one turns the
	// guard off; a DeleteGuardMin of 0 is DefaultDeleteGuardMin (10), a
	// negative one holds any deletion over the fraction.
	MaxDeleteFraction float64
	DeleteGuardMin    int
	// OnReload, if not nil, is called with the outcome of each reload, and
	// the store's result for an applied or unchanged one (metrics). It is
	// called with no lock of the source held.
	OnReload func(Outcome, store.Result)
	// Commit, if not nil, makes each reload's commit: it must call commit,
	// which commits the directory to the store, at most once, and return its
	// result and error (leanxds serve --rollout passes the commit to
	// rollout.Manager.Stage, which stages what it changes). It is called with
	// the source's reload lock held: it must not reload the source.
	Commit func(commit func() (store.Result, error)) (store.Result, error)
}

// Dir is the Source of a config directory: it keeps the store equal to the
// directory. Each reload reads the whole directory, once its files are quiet,
// and commits it as one atomic commit; if anything in it is invalid, too
// large, or a resource refers to one the directory does not define, it commits
// nothing, and if it would delete too much it waits for a confirmation:
// clients keep the last good config. A reload that finds the files as they
// were at the last commit commits nothing either: a change made to the store
// since (a rollback to an earlier revision) stands until the files change.
type Dir struct {
	dir string
	st  *store.Store
	log *slog.Logger
	// allowDangling is DirOptions.AllowDangling.
	allowDangling bool
	// limits bound the bytes a reload reads.
	limits readLimits
	// guard holds back reloads that would delete too much.
	guard deleteGuard
	// debounce is DirOptions.Debounce, resolved: 0 reads at once.
	debounce time.Duration
	// onReload is DirOptions.OnReload, commit DirOptions.Commit.
	onReload func(Outcome, store.Result)
	commit   func(commit func() (store.Result, error)) (store.Result, error)
	// now is the clock the files' modification times are compared with.
	now func() time.Time
	// afterRead, if not nil, is called with each file a reload has read; tests
	// use it to change the directory while a reload reads it.
	afterRead func(path string)
	// onWatch, if not nil, is called with the watcher Run makes; tests use it
	// to see what is watched.
	onWatch func(w *fsnotify.Watcher)

	// reloading serialises reloads: a read and its commit must not interleave
	// with another's. It guards the fields below.
	reloading sync.Mutex
	// keepRestored is set while the store holds a snapshot restored at start
	// that no reload has replaced yet. A directory without a single resource
	// is rejected then rather than applied: at start that is far more likely a
	// volume not mounted or populated yet than a decision to serve nothing.
	keepRestored bool
	// quiet tells whether the files have been left alone long enough to be read.
	quiet quietCheck
	// parsed is what each file parsed to at the last reload: only the files
	// whose bytes changed since are parsed again.
	parsed parseCache
	// held is the reload the guard holds back, if any.
	held *HeldReload
	// attempted is set once Load or a reload was tried.
	attempted bool
	// committed is the digest of the directory's content at its last
	// committed (applied or unchanged) reload, if any. A reload that reads
	// the same content commits nothing: what the store serves since (a
	// rollback, an aborted rollout) stands until the directory changes.
	committed    [sha256.Size]byte
	hasCommitted bool
	// lastCommitted is committed, published for Committed, which OnReload
	// and Commit may call (with reloading held).
	lastCommitted atomic.Pointer[[sha256.Size]byte]

	mu     sync.Mutex
	status Status
}

var _ Source = (*Dir)(nil)

// NewDir returns the source of config directory dir, committing to st. It reads
// nothing yet: Load and Run do.
func NewDir(dir string, st *store.Store, opts DirOptions) *Dir {
	dir = filepath.Clean(dir)
	d := &Dir{
		dir: dir, st: st, log: opts.Logger,
		allowDangling: opts.AllowDangling,
		limits:        readLimits{fileBytes: opts.MaxFileBytes, dirBytes: opts.MaxDirBytes},
		guard:         deleteGuard{fraction: opts.MaxDeleteFraction, min: opts.DeleteGuardMin},
		debounce:      opts.Debounce,
		onReload:      opts.OnReload,
		commit:        opts.Commit,
		now:           time.Now,
		status:        Status{Kind: KindDir, Location: dir, Dir: dir},
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.limits.fileBytes <= 0 {
		d.limits.fileBytes = DefaultMaxFileBytes
	}
	if d.limits.dirBytes <= 0 {
		d.limits.dirBytes = DefaultMaxDirBytes
	}
	switch {
	case d.debounce == 0:
		d.debounce = DefaultDebounce
	case d.debounce < 0:
		d.debounce = 0
	}
	switch {
	case d.guard.fraction == 0:
		d.guard.fraction = DefaultMaxDeleteFraction
	case d.guard.fraction < 0:
		d.guard.fraction = 1 // off
	}
	switch {
	case d.guard.min == 0:
		d.guard.min = DefaultDeleteGuardMin
	case d.guard.min < 0:
		d.guard.min = 0
	}
	d.quiet.period = d.debounce
	return d
}

// Load reads the directory once its files are quiet and commits it whole,
// waiting for the files only until ctx ends (the error is then a
// *NotQuietError). See Reload.
func (d *Dir) Load(ctx context.Context) (store.Result, error) {
	return d.Reload(ctx, false)
}

// Reload reads the directory once its files are quiet, waiting for them only
// until ctx ends (the error is then a *NotQuietError), and commits it whole.
// On error nothing changes: the error names every bad file, resource and
// field, or every dangling reference, and is logged, counted and kept for
// Status. A directory whose content is what its last committed reload read
// is not committed again: the outcome is Unchanged, with a zero Result. A *HeldError means the deletion guard holds the reload back; with
// confirm, a reload the guard held back is applied, if the directory still
// holds the content that was held.
func (d *Dir) Reload(ctx context.Context, confirm bool) (store.Result, error) {
	for {
		res, err := d.tryReload(confirm)
		nq, busy := errors.AsType[*NotQuietError](err)
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
// changed while it was read, it returns a *NotQuietError at once, having
// applied and recorded nothing; it should be tried again after its retry.
func (d *Dir) tryReload(confirm bool) (store.Result, error) {
	d.reloading.Lock()
	defer d.reloading.Unlock()
	d.attempted = true
	cfg, err := d.readQuiet()
	if nq, busy := errors.AsType[*NotQuietError](err); busy {
		d.waiting(nq)
		return store.Result{}, err
	}
	var (
		warnings  []string
		res       store.Result
		held      *HeldReload
		confirmed int
	)
	now := time.Now()
	// The checks run on what the commit would publish, in this order:
	// dangling references, an empty directory over a restored snapshot, the
	// deletion guard. They run under the store's commit lock: they only
	// decide, and what they decided is recorded, logged and reported
	// (OnReload) once the lock is released.
	check := func(next store.View, _ store.Result) error {
		var err error
		if warnings, err = cfg.checkRefs(next, d.allowDangling); err != nil {
			return err
		}
		if d.keepRestored && cfg.count("") == 0 {
			return ErrEmptyOverSnapshot
		}
		if ds := d.guard.held(d.st.View(), cfg); len(ds) > 0 {
			if !confirm || d.held == nil || d.held.digest != cfg.digest {
				held = &HeldReload{At: now, Deletions: ds, digest: cfg.digest}
				return &HeldError{Held: held, guard: d.guard, Changed: confirm && d.held != nil}
			}
			confirmed = len(ds)
		}
		return nil
	}
	sameContent := err == nil && d.hasCommitted && cfg.digest == d.committed
	if sameContent {
		// The files hold what was last committed: nothing to do, whatever the
		// store holds since. (Their warnings are the same as then.)
		warnings = d.Status().Warnings
	} else if err == nil {
		// The store's scopes join the directory's, so that what is no longer in
		// the directory (or was restored from elsewhere) is deleted.
		commit := func() (store.Result, error) {
			return d.st.CommitWith(store.CommitOptions{Source: "dir " + d.dir, Check: check}, cfg.changes(d.st.View().Scopes())...)
		}
		if d.commit != nil {
			res, err = d.commit(commit)
		} else {
			res, err = commit()
		}
		if held != nil {
			d.hold(held)
			return store.Result{}, err
		}
		if err == nil && confirmed > 0 {
			d.log.Warn("held reload confirmed", "dir", d.dir, "deletions", confirmed)
		}
	}
	d.held = nil
	if err != nil {
		d.rejected(now, err)
		return res, err
	}
	d.keepRestored = false
	d.committed, d.hasCommitted = cfg.digest, true
	digest := cfg.digest
	d.lastCommitted.Store(&digest)
	outcome := Unchanged
	if res.Changed() {
		outcome = Applied
	}
	sum := cfg.summary()
	var wasRejected time.Time
	d.update(func(s *Status) {
		if len(s.Errors) > 0 {
			wasRejected = s.LastRejected
		}
		s.Loaded = true
		s.LastAttempt, s.LastApplied = now, now
		s.Revision = d.st.View().Revision()
		s.Files, s.Scopes = sum.Files, sum.Scopes
		s.Errors, s.Warnings = nil, warnings
		s.Held, s.Writing, s.WritingSince = nil, "", time.Time{}
	})
	if d.onReload != nil {
		d.onReload(outcome, res)
	}
	if !wasRejected.IsZero() {
		// The last reload was rejected, and its errors logged: say they are gone.
		d.log.Info("config good again: the errors of the rejected reload are fixed", "dir", d.dir,
			"rejected_at", wasRejected, "changed", outcome == Applied)
	}
	if outcome == Applied {
		d.log.Info("config applied", "dir", d.dir, "revision", res.Revision, "files", cfg.files,
			"scopes", cfg.scopeNames(), "resources", cfg.count(""),
			"set", res.Set, "deleted", res.Deleted, "unchanged", res.Unchanged)
		for _, w := range warnings {
			d.log.Warn("dangling reference", "warning", w)
		}
	} else if sameContent {
		d.log.Debug("config unchanged since it was last applied: not applied again", "dir", d.dir, "resources", cfg.count(""))
	} else {
		d.log.Debug("config unchanged", "dir", d.dir, "resources", cfg.count(""))
	}
	for _, b := range cfg.bootstraps {
		d.log.Debug("skipped a client bootstrap file", "file", b)
	}
	return res, nil
}

// readQuiet reads the directory if its files are quiet, and returns a
// *NotQuietError if they are not, or if one changed while it was read.
// Guarded by reloading.
func (d *Dir) readQuiet() (*configDir, error) {
	files, _, err := listConfigDir(d.dir)
	if err != nil {
		return nil, err
	}
	before := stampsOf(files)
	if file, wait := d.quiet.check(before, d.now()); file != "" {
		return nil, &NotQuietError{File: file, period: d.quiet.period, retry: wait}
	}
	cfg, readErr := readConfigFiles(d.dir, files, d.limits, &d.parsed, d.afterRead)
	// Whatever was read, and whatever its errors, a file that changed while it
	// was read may have been read half-written: read it again later.
	after, _, err := listConfigDir(d.dir)
	if err != nil {
		return nil, err
	}
	if file := before.changed(stampsOf(after)); file != "" {
		return nil, &NotQuietError{File: file, WhileRead: true, period: d.quiet.period, retry: max(d.quiet.period, minRetry)}
	}
	return cfg, readErr
}

// minRetry is the least time before a reload put off because a file changed
// while it was read is tried again, with no debounce.
const minRetry = 50 * time.Millisecond

// update changes the status: the new value replaces the old one whole, so that
// a Status handed out never changes.
func (d *Dir) update(f func(*Status)) {
	d.mu.Lock()
	s := d.status
	f(&s)
	d.status = s
	d.mu.Unlock()
}

// waiting records a reload put off by a file being written. Guarded by
// reloading.
func (d *Dir) waiting(nq *NotQuietError) {
	first := false
	d.update(func(s *Status) {
		if first = s.Writing == ""; first {
			s.WritingSince = time.Now()
		}
		s.Writing = nq.File
	})
	if first {
		d.log.Info("a config file is being written: the reload waits until the files are quiet", "dir", d.dir, "file", nq.File, "reason", nq.Error())
	} else {
		d.log.Debug("config files still being written", "dir", d.dir, "file", nq.File)
	}
}

// hold records and logs a reload the guard holds back. Guarded by reloading.
func (d *Dir) hold(h *HeldReload) {
	d.held = h
	d.update(func(s *Status) {
		s.LastAttempt = h.At
		s.Held = h
		s.Writing, s.WritingSince = "", time.Time{}
	})
	if d.onReload != nil {
		d.onReload(Held, store.Result{})
	}
	attrs := []any{"dir", d.dir}
	for _, del := range h.Deletions {
		attrs = append(attrs, slog.Group("deletes", "scope", del.Scope, "type", del.Type, "deleted", del.Deleted, "of", del.Of))
	}
	d.log.Warn("config reload held: it would delete too much; the last good config is still served until `leanxds reload --confirm`, or the files change", attrs...)
}

// rejected records and logs a reload that failed. Guarded by reloading.
func (d *Dir) rejected(at time.Time, err error) {
	lines := ErrorLines(err)
	loaded := false
	d.update(func(s *Status) {
		s.LastAttempt, s.LastRejected = at, at
		s.Rejected++
		s.Errors = lines
		s.Held, s.Writing, s.WritingSince = nil, "", time.Time{}
		loaded = s.Loaded
	})
	if d.onReload != nil {
		d.onReload(Rejected, store.Result{})
	}
	msg := "config rejected: nothing is served yet"
	switch {
	case loaded:
		msg = "config rejected: the last good config is still served"
	case d.keepRestored:
		msg = "config rejected: the restored snapshot is still served"
	}
	d.log.Error(msg, "dir", d.dir, "errors", len(lines))
	for _, e := range flatten(err) {
		attrs := []any{"error", e.Error()}
		switch e := e.(type) {
		case *resources.LoadError:
			attrs = append(attrs, "file", e.File)
		case *DanglingRefError:
			attrs = append(attrs, "file", e.File)
		}
		d.log.Error("config error", attrs...)
	}
}

// ErrEmptyOverSnapshot rejects a directory without resources while the store
// holds a restored snapshot (KeepRestored).
var ErrEmptyOverSnapshot = errors.New("the directory holds no resource: the snapshot restored at start is served until it holds some")

// KeepRestored tells the source that the store holds a snapshot restored at
// start: until a reload is applied, a directory without resources does not
// replace it.
func (d *Dir) KeepRestored() {
	d.reloading.Lock()
	d.keepRestored = true
	d.reloading.Unlock()
}

// Committed returns a digest of the directory's content at its last
// committed (applied or unchanged) reload; nil before the first. Kept with a
// snapshot of the store and handed to AssumeCommitted after a restart, it
// makes a rollback made since that reload stand across the restart.
// It may be called from DirOptions.OnReload.
func (d *Dir) Committed() []byte {
	p := d.lastCommitted.Load()
	if p == nil {
		return nil
	}
	return bytes.Clone(p[:])
}

// AssumeCommitted tells the source that the store holds what a reload of the
// directory content of digest (Committed) committed, or what replaced it
// since (a rollback): a reload that finds that content commits nothing, as if
// this source had committed it. A digest of the wrong length is ignored.
func (d *Dir) AssumeCommitted(digest []byte) {
	if len(digest) != sha256.Size {
		return
	}
	d.reloading.Lock()
	defer d.reloading.Unlock()
	copy(d.committed[:], digest)
	d.hasCommitted = true
	c := d.committed
	d.lastCommitted.Store(&c)
}

// Status returns how the directory was last applied.
func (d *Dir) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// setStale records that the directory is not watched, and why; "" records
// that it is watched again.
func (d *Dir) setStale(reason string) {
	was := ""
	d.update(func(s *Status) { was = s.setStale(reason, time.Now()) })
	switch {
	case reason != "" && was == "":
		d.log.Error("the config directory is not watched: its changes are not seen, the last good config is served", "dir", d.dir, "reason", reason)
	case reason == "" && was != "":
		d.log.Info("the config directory is watched again", "dir", d.dir)
	}
}

// ErrorLines formats a load error one problem a line, file first: a
// *resources.LoadError already writes one line per violation.
func ErrorLines(err error) []string {
	var out []string
	for _, e := range flatten(err) {
		out = append(out, strings.Split(e.Error(), "\n")...)
	}
	return out
}

// flatten returns the errors a joined error is made of, depth first.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
