package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/leanxds/leanxds/admin"
	"github.com/leanxds/leanxds/persist"
	"github.com/leanxds/leanxds/source"
)

// The admin HTTP server and CSDS are package admin's; serve wires them to the
// config directory and the snapshot through the adapters below.

// adminTokenEnv is the environment variable of serve's --admin-token, which
// dump and reload read too.
var adminTokenEnv = envName("admin-token")

// displayJSON writes resources with the field names of the config files
// (snake_case), as Envoy's config dump does.
var displayJSON = protojson.MarshalOptions{UseProtoNames: true}

// csdsGuard says how CSDS is guarded, for the startup log; debugGuard is how
// the debug pages are (admin.Admin.Guard).
func csdsGuard(tokenSet bool, nodeIdentity, debugGuard string) string {
	switch {
	case nodeIdentity != "" && tokenSet:
		return "admin token, or the caller's own node (--node-identity)"
	case nodeIdentity != "":
		return "the caller's own node (--node-identity), every node for --csds-readers"
	}
	return debugGuard
}

// adminSource shows the config directory on the admin server (admin.Source,
// admin.Reloader).
type adminSource struct{ src *source.Dir }

func (a adminSource) SourceStatus() admin.SourceStatus {
	st := a.src.Status()
	return admin.SourceStatus{
		Dir: st.Dir, Loaded: st.Loaded, LastAttempt: st.LastAttempt, LastApplied: st.LastApplied,
		Revision: st.Revision, Files: st.Files, Scopes: st.Scopes, Rejected: st.Rejected,
		Errors: st.Errors, LastRejected: st.LastRejected, Warnings: st.Warnings, Held: adminHeld(st.Held),
		Writing: st.Writing, WritingSince: st.WritingSince, Stale: st.Stale, StaleSince: st.StaleSince,
	}
}

// Reload is POST /reload: the directory is read once quiet, until ctx ends.
func (a adminSource) Reload(ctx context.Context, confirm bool) admin.ReloadResult {
	res, err := a.src.Reload(ctx, confirm)
	r := admin.ReloadResult{Set: res.Set, Deleted: res.Deleted, Errors: source.ErrorLines(err)}
	switch {
	case err == nil && res.Changed():
		r.Outcome, r.Revision = admin.ReloadApplied, res.Revision
	case err == nil:
		r.Outcome = admin.ReloadUnchanged
	default:
		if h, ok := errors.AsType[*source.HeldError](err); ok {
			r.Outcome, r.Held = admin.ReloadHeld, adminHeld(h.Held)
		} else if _, ok := errors.AsType[*source.NotQuietError](err); ok {
			r.Outcome = admin.ReloadBusy
		} else {
			r.Outcome = admin.ReloadRejected
		}
	}
	return r
}

func adminHeld(h *source.HeldReload) *admin.HeldReload {
	if h == nil {
		return nil
	}
	out := &admin.HeldReload{At: h.At, Deletions: make([]admin.Deletion, len(h.Deletions))}
	for i, d := range h.Deletions {
		out.Deletions[i] = admin.Deletion{Scope: d.Scope, Type: d.Type, Deleted: d.Deleted, Of: d.Of}
	}
	return out
}

// adminSnapshot shows the snapshot (--snapshot) on the admin server
// (admin.Snapshot).
type adminSnapshot struct {
	*persist.Persister
	interval time.Duration
	// restored is what the restore at start found and did (server.snapshot).
	restored *atomic.Pointer[persist.Info]
}

func (a adminSnapshot) Interval() time.Duration { return a.interval }
func (a adminSnapshot) Restored() *persist.Info { return a.restored.Load() }
