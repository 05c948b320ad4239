package persist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leanxds/leanxds/store"
)

// Defaults of Options.
const (
	DefaultInterval        = 60 * time.Second
	DefaultMinBackoff      = time.Second
	DefaultMaxBackoff      = time.Minute
	DefaultWriteTimeout    = 2 * time.Minute
	DefaultShutdownTimeout = 30 * time.Second
)

// Options configure a Persister. The zero value is usable.
type Options struct {
	// Interval is how often the store is checked and, if its content changed
	// since the last write, written (--snapshot-interval). 0 means
	// DefaultInterval.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait before retrying a failed write:
	// it doubles from MinBackoff with each failure, up to MaxBackoff. 0 means
	// DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// WriteTimeout bounds one write, conflict resolution included. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ShutdownTimeout bounds the last write Run makes when its context ends. 0
	// means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Writer names this process in the snapshots it writes and in conflict logs;
	// "" means host/pid.
	Writer string
	// Logger receives writes (info), failures and conflicts (warn). nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock for the times recorded; nil means time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Writer == "" {
		host, _ := os.Hostname()
		o.Writer = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Persister writes a store's content to a Backend: every Interval if it changed,
// and once more when Run's context ends. A failing backend is retried with capped
// exponential backoff; the store and the streams reading it never wait for it.
//
// It never writes an empty store before the config source has loaded (see
// ConfigLoaded), so a server that starts without config, or whose snapshot was
// refused, does not replace the last good snapshot with nothing.
//
// A Persister is a prometheus.Collector of its metrics: register it.
type Persister struct {
	st   *store.Store
	b    Backend
	opts Options
	log  *slog.Logger

	// loaded is set by ConfigLoaded: an empty store is then a real state.
	loaded atomic.Bool

	// mu serialises Persist and Restore and guards the fields below.
	mu sync.Mutex
	// lastRev is the store revision whose content needs no writing: written,
	// restored, or found at the backend; valid when lastRevOK.
	lastRev   uint64
	lastRevOK bool
	// lastDigest is the content digest of the snapshot restored, valid when
	// lastDigestOK: until the store's revision is known to be written
	// (lastRevOK), a store holding that content needs no writing.
	lastDigest   [sha256.Size]byte
	lastDigestOK bool
	// writtenGen is the attachments' generation (attGen) last written or
	// restored.
	writtenGen uint64
	// baseRevision is the lineage revision this persister continues and
	// baseStoreRev the store revision it continues from: a snapshot's revision is
	// baseRevision + the commits since baseStoreRev (Header.Revision).
	baseRevision, baseStoreRev uint64
	// joined is set once the lineage is settled: by Restore (the restored
	// snapshot's, or a new one when there was none or it was refused), or by the
	// first conflict of a persister that could not read its backend at start,
	// which then continues the lineage of the snapshot it finds.
	joined bool
	// known is the header of the snapshot at the backend as last seen (restored,
	// written, or read on a conflict); valid when knownOK. A snapshot there that
	// is newer than the store's is left alone.
	known   Header
	knownOK bool
	// emptyLogged and olderLogged avoid repeating the same log every interval.
	emptyLogged, olderLogged bool

	// attMu guards the attachments and their generation, which counts their
	// changes; SetAttachment does not wait for a write in progress.
	attMu       sync.Mutex
	attachments map[string][]byte
	attGen      uint64

	// statsMu guards stats.
	statsMu sync.Mutex
	stats   Stats
	// duration observes the time of each write attempt.
	duration prometheus.Histogram
}

// Stats count what a Persister did.
type Stats struct {
	// Writes counts snapshots written.
	Writes uint64
	// Failures counts writes that failed (each retry counts).
	Failures uint64
	// Conflicts counts writes that found the snapshot replaced by another writer.
	Conflicts uint64
	// Unchanged counts checks that found nothing new to write.
	Unchanged uint64
	// LastSuccess is when the last snapshot was written.
	LastSuccess time.Time
	// LastBytes is the size of the last snapshot written.
	LastBytes int
	// LastDuration is how long the last write attempt took.
	LastDuration time.Duration
	// LastRevision is the lineage revision of the last snapshot written.
	LastRevision uint64
	// LastError is the error of the last failed write, cleared by a success.
	LastError string
}

// NewPersister returns a persister of st to b. Call Restore before the server
// accepts streams, then Run.
func NewPersister(st *store.Store, b Backend, opts Options) *Persister {
	opts.defaults()
	return &Persister{
		st:   st,
		b:    b,
		opts: opts,
		log:  opts.Logger.With("snapshot", b.String()),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "leanxds_snapshot_write_duration_seconds",
			Help:    "Time to encode and write a snapshot, conflict resolution included; failed attempts too.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
}

// Backend is where the persister writes.
func (p *Persister) Backend() Backend { return p.b }

// ConfigLoaded tells the persister that the config source has loaded its first
// configuration: from then on an empty store is the configuration, and is
// written like any other. Before, an empty store is never written, so that it
// cannot replace the last good snapshot.
func (p *Persister) ConfigLoaded() { p.loaded.Store(true) }

// Restore loads the backend's snapshot into the store (see the package function
// Restore), logs the outcome, and remembers what the backend holds, so that the
// store's content is not written back unchanged and later snapshots continue
// the restored snapshot's revision. A previous snapshot restored in place of a
// refused one is written back in place at once, so that the next start finds
// it there.
func (p *Persister) Restore(ctx context.Context) (Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	info, err := Restore(ctx, p.b, p.st)
	switch {
	case info.Restored:
		p.baseRevision, p.baseStoreRev, p.joined = info.Header.Revision, info.StoreRevision, true
		if info.Numbered {
			// The store continues the snapshot's numbering: the lineage
			// revision is the store's revision from now on.
			p.baseRevision = info.StoreRevision
		}
		p.known, p.knownOK = info.Header, true
		p.lastDigest, p.lastDigestOK = info.Header.ContentDigest, true
		// A resource that re-encodes differently changes the digest: the next
		// Persist then writes the snapshot anew.
		p.lastRevOK = false
		p.attMu.Lock()
		p.attachments = maps.Clone(info.Attachments)
		p.attGen++
		p.writtenGen = p.attGen
		p.attMu.Unlock()
		if info.HistoryErr != "" {
			p.log.Warn("snapshot restored without its history", "err", info.HistoryErr)
		}
		p.log.Info("snapshot restored", "from", info.From, "resources", info.Header.Resources, "scopes", info.Scopes,
			"revision", info.Header.Revision, "written_at", info.Header.WrittenAt, "writer", info.Header.Writer,
			"bytes", info.Bytes, "took", info.Took)
		if info.Mismatched > 0 {
			p.log.Warn("restored resources re-encode to a new content version; clients holding them will get them again",
				"count", info.Mismatched, "first", info.MismatchedNames)
		}
		if info.Refused {
			p.log.Error("snapshot refused; restored the newest previous snapshot that passes its checks",
				"from", info.From, "refused", info.Refusals, "set_aside", info.SetAside)
			// The location holds no snapshot now (the refused one was set aside):
			// write the restored content there.
			p.lastDigestOK = false
			if _, werr := p.persistLocked(ctx); werr != nil {
				p.log.Warn("writing the restored snapshot back in place failed; will retry", "err", werr)
			}
		}
	case info.Refused:
		// A new lineage: the refused snapshot is no one's to continue.
		p.joined = true
		p.log.Error("snapshot refused; serving from the config source alone", "err", err, "set_aside", info.SetAside)
	case err != nil:
		p.log.Error("snapshot not restored; serving from the config source alone", "err", err)
	default:
		p.joined = true
		p.log.Info("no snapshot to restore; serving from the config source alone")
	}
	return info, err
}

// Run writes the store's content every Interval if it changed, retrying a failed
// write after a backoff that doubles up to MaxBackoff, until ctx ends; then it
// writes once more, within ShutdownTimeout, and returns that write's error.
func (p *Persister) Run(ctx context.Context) error {
	timer := time.NewTimer(p.opts.Interval)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.ShutdownTimeout)
			defer cancel()
			if _, err := p.Persist(fctx); err != nil {
				p.log.Error("last snapshot before shutdown failed", "err", err)
				return fmt.Errorf("last snapshot before shutdown: %w", err)
			}
			return nil
		case <-timer.C:
		}
		if _, err := p.Persist(ctx); err != nil {
			if ctx.Err() != nil {
				continue // shutting down: the last write follows
			}
			failures++
			wait := p.backoff(failures)
			p.log.Warn("snapshot write failed; serving goes on, will retry", "err", err, "failures", failures, "retry_in", wait)
			timer.Reset(wait)
			continue
		}
		if failures > 0 {
			p.log.Info("snapshot writes resumed", "after_failures", failures)
			failures = 0
		}
		timer.Reset(p.opts.Interval)
	}
}

// backoff is the wait before retry n (from 1): MinBackoff doubled n-1 times,
// capped at MaxBackoff, less up to a fifth at random so that replicas that
// failed together do not retry together.
func (p *Persister) backoff(n int) time.Duration {
	d := p.opts.MaxBackoff
	if n < 31 {
		d = min(p.opts.MinBackoff<<(n-1), p.opts.MaxBackoff)
	}
	return d - rand.N(d/5+1)
}

// Persist writes the store's content now if it changed since the last snapshot
// written or restored, or an attachment did (SetAttachment), and reports
// whether it wrote. "Changed" is decided cheaply: the same store revision means
// the same content and history. A new revision is written, even when its
// content is the same (a change undone), so that the snapshot keeps the
// history and the revision numbering the store continues after a restart;
// only a store just restored, holding the snapshot's content (the content
// digest, ContentDigest, says so), is not written back.
//
// It writes nothing when the store is empty and ConfigLoaded was not called, nor
// when the location holds a newer snapshot of another writer (see write).
func (p *Persister) Persist(ctx context.Context) (wrote bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.persistLocked(ctx)
}

// persistLocked is Persist, with p.mu held.
func (p *Persister) persistLocked(ctx context.Context) (wrote bool, err error) {
	v := p.st.View()
	gen, atts := p.attachmentsNow()
	attsWritten := gen == p.writtenGen
	if p.lastRevOK && v.Revision() == p.lastRev && attsWritten {
		p.count(func(s *Stats) { s.Unchanged++ })
		return false, nil
	}
	if len(v.Scopes()) == 0 && !p.loaded.Load() {
		// Never an empty store over an existing snapshot before the first real
		// config has loaded.
		if !p.emptyLogged {
			p.log.Info("store is empty and no config has loaded yet: not writing a snapshot")
			p.emptyLogged = true
		}
		return false, nil
	}
	digest := ContentDigest(v)
	if !p.lastRevOK && p.lastDigestOK && digest == p.lastDigest && attsWritten {
		// Restored, and the store still holds the snapshot's content.
		p.lastRev, p.lastRevOK = v.Revision(), true
		p.count(func(s *Stats) { s.Unchanged++ })
		return false, nil
	}

	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, p.opts.WriteTimeout)
	defer cancel()
	hdr, size, err := p.write(wctx, v, digest, atts)
	took := time.Since(start)
	if err != nil {
		if ctx.Err() == nil { // not a write cut short by shutdown
			p.duration.Observe(took.Seconds())
			p.count(func(s *Stats) { s.Failures++; s.LastDuration = took; s.LastError = err.Error() })
		}
		return false, err
	}
	p.lastRev, p.lastRevOK = v.Revision(), true
	p.lastDigest, p.lastDigestOK = digest, true
	p.writtenGen = gen
	p.emptyLogged = false
	if size == 0 {
		p.count(func(s *Stats) { s.LastDuration = took; s.LastError = "" })
		return false, nil
	}
	p.duration.Observe(took.Seconds())
	now := p.opts.Now()
	p.count(func(s *Stats) {
		s.Writes++
		s.LastSuccess, s.LastBytes, s.LastDuration, s.LastRevision, s.LastError = now, size, took, hdr.Revision, ""
	})
	p.log.Info("snapshot written", "bytes", size, "resources", hdr.Resources, "revision", hdr.Revision, "took", took)
	return true, nil
}

// SetAttachment makes the snapshots written from now on carry data under name
// (the state of a rollout, say), and the next Persist write one even when the
// store did not change; an empty data removes the attachment. Setting the data
// an attachment has changes nothing. The data is copied. After Restore, the
// attachments are those the restored snapshot carried (Info.Attachments).
//
// It fails, keeping the attachments as they were, when name is empty or longer
// than MaxAttachmentName, or when the attachments would be more than
// MaxAttachments or MaxAttachmentBytes together: a snapshot never holds more
// than a restore accepts.
func (p *Persister) SetAttachment(name string, data []byte) error {
	p.attMu.Lock()
	defer p.attMu.Unlock()
	old, had := p.attachments[name]
	if len(data) == 0 {
		if had {
			delete(p.attachments, name)
			p.attGen++
		}
		return nil
	}
	if had && bytes.Equal(old, data) {
		return nil
	}
	if name == "" || len(name) > MaxAttachmentName {
		return fmt.Errorf("attachment name of %d bytes: 1 to %d (MaxAttachmentName)", len(name), MaxAttachmentName)
	}
	if !had && len(p.attachments) >= MaxAttachments {
		return fmt.Errorf("attachment %q: the snapshot holds %d attachments already (MaxAttachments)", name, MaxAttachments)
	}
	total := len(data) - len(old)
	for _, d := range p.attachments {
		total += len(d)
	}
	if total > MaxAttachmentBytes {
		return fmt.Errorf("attachment %q: %d bytes of attachments, more than MaxAttachmentBytes (%d)", name, total, MaxAttachmentBytes)
	}
	if p.attachments == nil {
		p.attachments = map[string][]byte{}
	}
	p.attachments[name] = bytes.Clone(data)
	p.attGen++
	return nil
}

// attachmentsNow returns the attachments' generation and a copy of the map
// (the data is never modified: SetAttachment replaces it).
func (p *Persister) attachmentsNow() (uint64, map[string][]byte) {
	p.attMu.Lock()
	defer p.attMu.Unlock()
	return p.attGen, maps.Clone(p.attachments)
}

// maxConflictRounds bounds the write–conflict–re-read rounds of one write.
const maxConflictRounds = 3

// write writes v (whose content digest is digest) unless the backend holds a
// newer snapshot, resolving conflicts with other writers of the location: on a
// conflict it re-reads the snapshot there and keeps it if it holds the same
// content or is newer (higher lineage revision; at equal revisions, later last
// commit), or replaces it if it is older or fails its checks (setting it aside
// first). It returns the header written and the snapshot's size; size 0 when
// it decided not to write.
func (p *Persister) write(ctx context.Context, v store.View, digest [sha256.Size]byte, atts map[string][]byte) (Header, int, error) {
	var err error
	for range maxConflictRounds {
		ours := Header{Revision: p.lineage(v), CommittedAt: v.CommittedAt(), ContentDigest: digest}
		if p.knownOK && newer(p.known, ours) {
			if !p.olderLogged {
				p.log.Info("the snapshot at the location is newer than the store; not writing until the store is newer",
					"their_writer", p.known.Writer, "their_revision", p.known.Revision, "revision", ours.Revision)
				p.olderLogged = true
			}
			return ours, 0, nil
		}
		p.olderLogged = false
		data, hdr := Encode(v, Meta{WrittenAt: p.opts.Now(), Revision: ours.Revision, Writer: p.opts.Writer, Attachments: atts})
		err = p.b.Write(ctx, data)
		if err == nil {
			p.known, p.knownOK, p.joined = hdr, true, true
			return hdr, len(data), nil
		}
		if !errors.Is(err, ErrConflict) {
			return hdr, 0, err
		}
		p.count(func(s *Stats) { s.Conflicts++ })
		remote, rerr := p.b.Read(ctx)
		if errors.Is(rerr, ErrNotFound) {
			p.knownOK = false
			p.log.Warn("snapshot conflict: the snapshot was removed meanwhile; writing ours", "revision", ours.Revision)
			continue
		}
		if rerr != nil {
			return hdr, 0, fmt.Errorf("%w; re-reading it: %w", err, rerr)
		}
		theirs, derr := Decode(remote)
		if derr != nil {
			aside, aerr := p.b.SetAside(ctx, asideSuffix(p.opts.Now()))
			if aerr != nil {
				return hdr, 0, fmt.Errorf("%w; it fails its checks (%w) and could not be set aside: %w", err, derr, aerr)
			}
			p.knownOK = false
			p.log.Warn("snapshot conflict: the snapshot there fails its checks; kept it aside and replacing it",
				"err", derr, "set_aside", aside, "revision", ours.Revision)
			continue
		}
		if !p.joined {
			// This persister could not read its backend at start: it continues
			// the lineage it finds, and its content goes there if its last
			// commit is later.
			p.baseRevision, p.baseStoreRev, p.joined = theirs.Revision, v.Revision(), true
			p.log.Info("continuing the revisions of the snapshot found", "their_revision", theirs.Revision, "their_writer", theirs.Writer)
		}
		p.known, p.knownOK = theirs.Header, true
		attrs := []any{"their_writer", theirs.Writer, "their_revision", theirs.Revision,
			"their_committed_at", theirs.CommittedAt, "revision", p.lineage(v), "committed_at", v.CommittedAt()}
		switch {
		case theirs.ContentDigest == digest && sameAttachments(theirs.Attachments, atts):
			p.log.Info("snapshot conflict: the snapshot there already holds this content; not writing", attrs...)
			return hdr, 0, nil
		case newer(theirs.Header, Header{Revision: p.lineage(v), CommittedAt: v.CommittedAt()}):
			p.log.Warn("snapshot conflict: the snapshot there is newer; keeping it", attrs...)
			p.olderLogged = true
			return hdr, 0, nil
		default:
			p.log.Warn("snapshot conflict: the snapshot there is older; replacing it", attrs...)
		}
	}
	return Header{}, 0, fmt.Errorf("%w (still, after %d rounds of re-reading)", err, maxConflictRounds)
}

// newer reports whether snapshot a supersedes snapshot b: a higher lineage
// revision, or at equal revisions a later last commit.
func newer(a, b Header) bool {
	if a.Revision != b.Revision {
		return a.Revision > b.Revision
	}
	return a.CommittedAt.After(b.CommittedAt)
}

// lineage is the revision a snapshot of v records (Header.Revision).
func (p *Persister) lineage(v store.View) uint64 {
	return p.baseRevision + (v.Revision() - min(v.Revision(), p.baseStoreRev))
}

func (p *Persister) count(f func(*Stats)) {
	p.statsMu.Lock()
	f(&p.stats)
	p.statsMu.Unlock()
}

// Stats returns what the persister did so far.
func (p *Persister) Stats() Stats {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	return p.stats
}

func sameAttachments(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}
