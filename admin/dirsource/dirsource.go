// Package dirsource shows a config directory (source.Dir) on the admin
// server: its reload state on the index page, /readyz, /debug/reload and the
// metrics, and POST /reload.
//
//	dir := source.NewDir(path, st, source.DirOptions{})
//	a := admin.New(admin.Options{Store: st, Streams: srv,
//		Source: dirsource.Of(dir), Reloader: dirsource.Of(dir)})
//
// Package admin takes what it shows through its Source and Reloader
// interfaces, so that it knows no source; this package is the bridge for the
// config directory.
package dirsource

import (
	"context"
	"errors"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/source"
)

// Dir is a config directory as the admin server sees it: an admin.Source and
// an admin.Reloader.
type Dir struct{ src *source.Dir }

// Of returns the admin server's view of src.
func Of(src *source.Dir) Dir { return Dir{src} }

// SourceStatus returns how the directory was last read and applied.
func (d Dir) SourceStatus() admin.SourceStatus {
	st := d.src.Status()
	return admin.SourceStatus{
		Kind: admin.SourceDir, Location: st.Location, Dir: st.Dir, Loaded: st.Loaded, LastAttempt: st.LastAttempt, LastApplied: st.LastApplied,
		Revision: st.Revision, Files: st.Files, Scopes: st.Scopes, Rejected: st.Rejected,
		Errors: st.Errors, LastRejected: st.LastRejected, Warnings: st.Warnings, Held: held(st.Held),
		Writing: st.Writing, WritingSince: st.WritingSince, Stale: st.Stale, StaleSince: st.StaleSince,
	}
}

// Reload is POST /reload: the directory is read once quiet, until ctx ends.
func (d Dir) Reload(ctx context.Context, confirm bool) admin.ReloadResult {
	res, err := d.src.Reload(ctx, confirm)
	r := admin.ReloadResult{Set: res.Set, Deleted: res.Deleted, Errors: source.ErrorLines(err)}
	switch {
	case err == nil && res.Changed():
		r.Outcome, r.Revision = admin.ReloadApplied, res.Revision
	case err == nil:
		r.Outcome = admin.ReloadUnchanged
	default:
		if h, ok := errors.AsType[*source.HeldError](err); ok {
			r.Outcome, r.Held = admin.ReloadHeld, held(h.Held)
		} else if _, ok := errors.AsType[*source.NotQuietError](err); ok {
			r.Outcome = admin.ReloadBusy
		} else {
			r.Outcome = admin.ReloadRejected
		}
	}
	return r
}

func held(h *source.HeldReload) *admin.HeldReload {
	if h == nil {
		return nil
	}
	out := &admin.HeldReload{At: h.At, Deletions: make([]admin.Deletion, len(h.Deletions))}
	for i, d := range h.Deletions {
		out.Deletions[i] = admin.Deletion{Scope: d.Scope, Type: d.Type, Deleted: d.Deleted, Of: d.Of}
	}
	return out
}
