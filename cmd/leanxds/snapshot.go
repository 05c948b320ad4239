package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/leanxds/leanxds/persist"
)

// With --snapshot, serve keeps a snapshot of its store (package persist):
//
//  1. newServer opens the location, so that a bad URL or an unwritable
//     directory fails at start, and registers the persister's metrics.
//  2. run restores the snapshot into the store before the first load of the
//     directory and before the xDS port opens (restoreSnapshot): a client that
//     reconnects naming the versions it holds is sent nothing new (S3, D3, S6).
//  3. The directory then takes over: its first commit is deduplicated against
//     the restored content. If it is invalid, or empty, at start, the snapshot
//     is served until it is fixed (source.Dir.KeepRestored).
//  4. The persister writes the store every --snapshot-interval if it changed,
//     and once more at shutdown; it writes an empty store only once the
//     directory has loaded (ConfigLoaded, called by the reload hook).

// defaultRestoreTimeout is --restore-timeout's default. It bounds the restore
// at start: a backend that does not answer (an S3 endpoint that accepts
// connections and never replies) keeps the xDS port closed this long at most;
// the server then starts from its config directory alone.
const defaultRestoreTimeout = 10 * time.Second

// openSnapshot opens the --snapshot location. Its error names the URL.
func openSnapshot(ctx context.Context, rawURL string) (persist.Backend, error) {
	b, err := persist.Open(ctx, rawURL, persist.BackendOptions{})
	if err != nil {
		name := rawURL
		if u, perr := url.Parse(rawURL); perr == nil {
			name = u.Redacted()
		}
		if strings.Contains(err.Error(), name) {
			return nil, fmt.Errorf("--snapshot: %w", err)
		}
		return nil, fmt.Errorf("--snapshot %s: %w", name, err)
	}
	return b, nil
}

// restoreSnapshot loads the snapshot into the store, before the first load of
// the directory and before any client is served. Whatever happens, serving goes
// on: a snapshot that is missing, unreadable or refused leaves the store to the
// directory. The persister logs the outcome (how many resources, which
// revision, or why not).
func (s *server) restoreSnapshot(ctx context.Context) {
	if s.persister == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.restoreTimeout)
	defer cancel()
	info, _ := s.persister.Restore(rctx) // the error is in info.Err, and logged
	if !info.Restored && info.Err != "" && errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		info.Err = fmt.Sprintf("restore timed out after %s: %s", s.opts.restoreTimeout, info.Err)
		s.log.Warn("snapshot restore timed out; serving from the config source alone",
			"timeout", s.opts.restoreTimeout.String(), "snapshot", info.Location)
	}
	s.snapshot.Store(&info)
	if info.Restored {
		s.restoreAttachments(info)
	}
	if info.Restored && info.Header.Resources > 0 {
		if s.etcd != nil {
			s.etcd.KeepRestored()
		} else {
			s.source.KeepRestored()
		}
	}
}

// noSnapshotHint says, for the error of a start with nothing to serve, why no
// snapshot was restored; "" without --snapshot.
func (s *server) noSnapshotHint() string {
	info := s.snapshot.Load()
	switch {
	case s.persister == nil || info == nil || info.Restored:
		return ""
	case info.Err != "":
		return "\nand no snapshot was restored: " + info.Err
	}
	return "\nand there is no snapshot at " + info.Location
}

// startPersister runs the persister until stop is called; stop makes it write
// once more (within persist.DefaultShutdownTimeout) and waits for that write.
func (s *server) startPersister(ctx context.Context) (stop func()) {
	if s.persister == nil {
		return func() {}
	}
	// Not ctx itself: the last write happens once ctx has ended.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.persister.Run(pctx) // Run logs its failures, the last one included
	}()
	return func() {
		cancel()
		<-done
	}
}
