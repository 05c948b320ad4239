package admin

import (
	"fmt"
	"strings"
	"time"

	"github.com/leanxds/leanxds/persist"
)

// Snapshot is what the admin server shows of the snapshot kept of the store
// (package persist): where it is written, how the writes went, and what the
// restore at start found.
type Snapshot interface {
	// Backend is where snapshots are written (its String names it).
	Backend() persist.Backend
	// Stats counts the writes since start (persist.Persister.Stats).
	Stats() persist.Stats
	// Interval is how often the store is written if it changed.
	Interval() time.Duration
	// Restored is what the restore at start found and did; nil until it ran.
	Restored() *persist.Info
}

// readiness is the answer of /readyz: whether a config is served, where it
// came from, and what became of the snapshot.
func (a *Admin) readiness() (ready bool, text string) {
	if a.opts.Ready != nil && !a.opts.Ready() {
		return false, "initial config not loaded"
	}
	var b strings.Builder
	if a.opts.Source == nil {
		b.WriteString("ready")
	} else {
		st := a.opts.Source.SourceStatus()
		if st.Loaded {
			b.WriteString("ready: config loaded")
		} else {
			// Ready only because the store holds a restored snapshot.
			if st.isEtcd() {
				b.WriteString("ready: serving the restored snapshot; etcd is not read yet (see /)")
			} else {
				b.WriteString("ready: serving the restored snapshot; the config directory is not applied (see /)")
			}
		}
		for _, n := range readyNotes(st) {
			b.WriteString("; " + n)
		}
	}
	if a.opts.Snapshot == nil {
		return true, b.String()
	}
	switch info := a.opts.Snapshot.Restored(); {
	case info == nil:
		b.WriteString("; snapshot not restored yet")
	case info.Restored:
		// From names the previous snapshot restored when the newest was refused.
		fmt.Fprintf(&b, "; snapshot restored: %d resources, revision %d, from %s",
			info.Header.Resources, info.Header.Revision, info.From)
	case info.Err != "":
		// "snapshot refused: <location>: <check>: ...; kept as <path>", or
		// "reading snapshot <location>: ..."
		if !info.Refused {
			b.WriteString("; snapshot not restored: ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(info.Err)
	default:
		fmt.Fprintf(&b, "; no snapshot at %s", info.Location)
	}
	return true, b.String()
}

// snapshotLines is the snapshot's part of the admin page.
func (a *Admin) snapshotLines(b *strings.Builder) {
	s := a.opts.Snapshot
	if s == nil {
		return
	}
	fmt.Fprintf(b, "snapshot  %s\n", s.Backend())
	if info := s.Restored(); info != nil {
		fmt.Fprintf(b, "          at start: %s\n", info)
	}
	st := s.Stats()
	if st.LastSuccess.IsZero() {
		fmt.Fprintf(b, "          not written since start (every %s if the config changed)\n", s.Interval())
	} else {
		fmt.Fprintf(b, "          written %s (revision %d, %d bytes); %d written since start\n",
			st.LastSuccess.Format(time.RFC3339), st.LastRevision, st.LastBytes, st.Writes)
	}
	if st.LastError != "" {
		fmt.Fprintf(b, "          LAST WRITE FAILED (%d failures since start): %s\n", st.Failures, st.LastError)
	}
}
