package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is what the admin server shows of where the served config comes
// from (a config directory, ...): the index page, /readyz, /debug/reload and
// the metrics leanxds_config_reload_held and leanxds_config_source_stale
// read it.
type Source interface {
	// SourceStatus returns how the config was last applied. The value is the
	// caller's: the source keeps no reference to it.
	SourceStatus() SourceStatus
}

// Reloader reads the config again now (POST /reload).
type Reloader interface {
	// Reload reads the config once it is quiet (until ctx ends: then the
	// outcome is ReloadBusy) and applies it; with confirm, it applies a reload
	// that was held back, if the config still holds what was held.
	Reload(ctx context.Context, confirm bool) ReloadResult
}

// Kinds of source, as SourceStatus.Kind names them ("" is a directory).
const (
	SourceDir  = "directory"
	SourceEtcd = "etcd"
)

// SourceStatus is how the config was last applied, as /debug/reload shows it.
type SourceStatus struct {
	// Kind is SourceDir or SourceEtcd; "" is SourceDir.
	Kind string `json:"kind,omitempty"`
	// Location is where the config is read from: the directory's path, the
	// etcd:// address; "" is Dir.
	Location string `json:"location,omitempty"`
	// Dir is the config directory's path; empty for another kind.
	Dir string `json:"dir"`
	// Generation and EtcdRevision are, for etcd, the generation served and
	// the etcd revision the served config is equal to.
	Generation   string `json:"generation,omitempty"`
	EtcdRevision int64  `json:"etcd_revision,omitempty"`
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
	// Rejected counts rejected reloads since start (for etcd, values refused).
	Rejected int `json:"rejected_reloads"`
	// Errors are those of the last reload, one line each, file first; empty when
	// it was applied. For etcd, one line per key whose value is refused (its
	// last good value is served; the other keys are applied). LastRejected is
	// when the last was rejected.
	Errors       []string  `json:"errors,omitempty"`
	LastRejected time.Time `json:"last_rejected,omitzero"`
	// Warnings are the references the config being served makes to resources
	// it does not define: served with --allow-dangling only, refused otherwise.
	Warnings []string `json:"warnings,omitempty"`
	// Held is the reload the deletion guard holds back until it is confirmed
	// or the config changes again; nil when none.
	Held *HeldReload `json:"held,omitempty"`
	// Writing is the file a reload waits for, being written since WritingSince;
	// empty when no reload waits.
	Writing      string    `json:"writing,omitempty"`
	WritingSince time.Time `json:"writing_since,omitzero"`
	// Stale says why the config is not watched (it was removed, or cannot be
	// watched; etcd is unreachable), since StaleSince: its changes are not
	// seen, and the last good config is served. Empty while it is watched.
	Stale      string    `json:"stale,omitempty"`
	StaleSince time.Time `json:"stale_since,omitzero"`
}

// HeldReload is a reload the deletion guard held back: the last good config
// is still served.
type HeldReload struct {
	At time.Time `json:"at"`
	// Deletions are those over the guard's limit.
	Deletions []Deletion `json:"deletions"`
}

// Deletion is what a reload would delete of one type in one scope.
type Deletion struct {
	Scope string `json:"scope"`
	// Type is the short name of the type (CDS, EDS, ...).
	Type    string `json:"type"`
	Deleted int    `json:"deleted"`
	// Of is how many the scope serves now.
	Of int `json:"of"`
}

func (d Deletion) String() string {
	return fmt.Sprintf("%d of %d %s in scope %q", d.Deleted, d.Of, d.Type, d.Scope)
}

// Reload outcomes, as ReloadResult, the metrics and the admin page name them.
const (
	ReloadApplied   = "applied"   // the config changed the store
	ReloadUnchanged = "unchanged" // the config was read and matched the store (dedup)
	ReloadRejected  = "rejected"  // the config was invalid, or left a reference dangling: the last good config is still served
	ReloadHeld      = "held"      // the config would delete too much: the last good config is still served until confirmed
	ReloadBusy      = "busy"      // the files were still being written when the request gave up (POST /reload only)
)

// ReloadResult is the answer of POST /reload.
type ReloadResult struct {
	// Outcome is ReloadApplied, ReloadUnchanged, ReloadRejected, ReloadHeld or
	// ReloadBusy.
	Outcome  string `json:"outcome"`
	Revision uint64 `json:"revision,omitempty"`
	Set      int    `json:"set"`
	Deleted  int    `json:"deleted"`
	// Errors are the reload's errors, one line each.
	Errors []string    `json:"errors,omitempty"`
	Held   *HeldReload `json:"held,omitempty"`
}

// reloadRequestTimeout bounds how long POST /reload waits for the files to be
// quiet.
const reloadRequestTimeout = 30 * time.Second

// handleReload is POST /reload[?confirm=true].
func (a *Admin) handleReload(w http.ResponseWriter, r *http.Request) {
	confirm := false
	if v := r.URL.Query().Get("confirm"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "confirm=%q: want true or false", v)
			return
		}
		confirm = b
	}
	ctx, cancel := context.WithTimeout(r.Context(), reloadRequestTimeout)
	defer cancel()
	res := a.opts.Reloader.Reload(ctx, confirm)
	code := http.StatusOK
	switch res.Outcome {
	case ReloadApplied, ReloadUnchanged:
	case ReloadHeld:
		code = http.StatusConflict
	case ReloadBusy:
		code = http.StatusServiceUnavailable
	default:
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, res)
}

// What an operator is shown of the source beyond its last reload: a reload
// the deletion guard holds back, a file a reload waits for, and a config that
// is no longer watched. The admin page shows all three, /readyz the first and
// the last, and the metrics the first and the last.

// sourceNotes writes the admin page's lines about a held reload, a file being
// written and a stale directory.
func sourceNotes(b *strings.Builder, st SourceStatus) {
	if st.Stale != "" && st.isEtcd() {
		fmt.Fprintf(b, "\nSTALE since %s: %s: changes in etcd are not seen, the last good config is served; reconnecting\n",
			st.StaleSince.Format(time.RFC3339), st.Stale)
	} else if st.Stale != "" {
		fmt.Fprintf(b, "\nSTALE since %s: the config directory is not watched (%s): its changes are not seen, the last good config is served\n",
			st.StaleSince.Format(time.RFC3339), st.Stale)
	}
	if st.Held != nil {
		fmt.Fprintf(b, "\nRELOAD HELD at %s: it would delete too much; the last good config is still served:\n", st.Held.At.Format(time.RFC3339))
		for _, d := range st.Held.Deletions {
			fmt.Fprintf(b, "  deletes %s\n", d)
		}
		fmt.Fprintf(b, "  apply it with `leanxds reload --confirm` (POST /reload?confirm=true), or change the files\n")
	}
	if st.Writing != "" {
		fmt.Fprintf(b, "\nwaiting   for %s to be quiet (being written since %s)\n", st.Writing, st.WritingSince.Format(time.RFC3339))
	}
}

// readyNotes are what /readyz adds, after "ready: ...", about the source.
// They do not make the server unready: what it serves is the last good config
// either way (docs/serve.md says why).
func readyNotes(st SourceStatus) []string {
	var out []string
	if st.Stale != "" && st.isEtcd() {
		out = append(out, fmt.Sprintf("config source stale since %s: %s; the last good config is served", st.StaleSince.Format(time.RFC3339), st.Stale))
	} else if st.Stale != "" {
		out = append(out, fmt.Sprintf("config directory stale since %s: not watched (%s)", st.StaleSince.Format(time.RFC3339), st.Stale))
	}
	if st.Held != nil {
		ds := make([]string, len(st.Held.Deletions))
		for i, d := range st.Held.Deletions {
			ds[i] = d.String()
		}
		out = append(out, fmt.Sprintf("reload held since %s: it would delete %s; confirm with `leanxds reload --confirm`",
			st.Held.At.Format(time.RFC3339), strings.Join(ds, ", ")))
	}
	return out
}

// sourceCollector reports, when scraped, whether a reload is held and whether
// the source is stale.
type sourceCollector struct {
	src         Source
	held, stale *prometheus.Desc
}

func newSourceCollector(src Source) sourceCollector {
	return sourceCollector{
		src: src,
		held: prometheus.NewDesc("leanxds_config_reload_held",
			"1 while a reload of the config directory is held back because it would delete too much (--max-delete-fraction): it waits for `leanxds reload --confirm` or another change.", nil, nil),
		stale: prometheus.NewDesc("leanxds_config_source_stale",
			"1 while the config source is not followed (the config directory removed, or not watchable; etcd unreachable): its changes are not seen, and the last good config is served.", nil, nil),
	}
}

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.held
	ch <- c.stale
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.SourceStatus()
	ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, boolValue(st.Held != nil))
	ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, boolValue(st.Stale != ""))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (st SourceStatus) isEtcd() bool { return st.Kind == SourceEtcd }

// location is where the config is read from.
func (st SourceStatus) location() string {
	if st.Location != "" {
		return st.Location
	}
	return st.Dir
}
