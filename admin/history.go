package admin

import (
	"fmt"
	"net/http"
	"time"

	"github.com/leanxds/leanxds/store"
)

// HistoryPage is the JSON of /debug/history: the revisions the store keeps of
// each scope, newest first.
type HistoryPage struct {
	// Revision is the store's newest revision.
	Revision uint64 `json:"revision"`
	// Revisions are every scope's kept revisions, newest first; a commit
	// that changed several scopes is one entry per scope.
	Revisions []HistoryEntry `json:"revisions"`
}

// HistoryEntry is one revision of one scope.
type HistoryEntry struct {
	Revision uint64    `json:"revision"`
	Scope    string    `json:"scope"`
	At       time.Time `json:"at"`
	// Source is who committed it: "dir /etc/leanxds", "rollback to 12", ...
	Source string `json:"source"`
	// Resources is how many resources the scope held at that revision.
	Resources int `json:"resources"`
	// Added, Changed and Removed count the resources the revision changed,
	// and Names lists the first of them: "+CDS/web", "~LDS/main", "-RDS/old".
	Added   int      `json:"added"`
	Changed int      `json:"changed"`
	Removed int      `json:"removed"`
	Names   []string `json:"names,omitempty"`
	// Current is set on the scope's newest revision: what it serves now.
	Current bool `json:"current,omitempty"`
}

// historyPage reads the history of the store's view: of one scope if scope
// is set.
func historyPage(v store.View, scope string) HistoryPage {
	var revs []store.Revision
	if scope != "" {
		revs = v.History(scope)
	} else {
		revs = v.Revisions()
	}
	page := HistoryPage{Revision: v.Revision(), Revisions: make([]HistoryEntry, 0, len(revs))}
	seen := make(map[string]bool)
	for _, r := range revs {
		page.Revisions = append(page.Revisions, HistoryEntry{
			Revision: r.Revision, Scope: r.Scope, At: r.At, Source: r.Source, Resources: r.Resources,
			Added: r.Summary.Added, Changed: r.Summary.Changed, Removed: r.Summary.Removed, Names: r.Summary.Names,
			// Revisions are newest first: a scope's first is its current one.
			Current: !seen[r.Scope],
		})
		seen[r.Scope] = true
	}
	return page
}

// handleHistory is GET /debug/history[?scope=NAME]: the revisions the store
// keeps, as JSON with ?format=json, as HTML otherwise.
func (a *Admin) handleHistory(w http.ResponseWriter, r *http.Request) {
	page := historyPage(a.opts.Store.View(), r.URL.Query().Get("scope"))
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, page)
		return
	}
	writeHTML(w, a.pages.Lookup("history"), page)
}

// rollback is POST /admin/rollback's: through the rollouts, which end the
// one in progress, or the store itself without them.
func (a *Admin) rollback(to uint64, source string) (store.Result, error) {
	if a.opts.Rollouts != nil {
		return a.opts.Rollouts.Rollback(to, source)
	}
	if to == 0 {
		cur := a.opts.Store.View().Revision()
		if cur < 2 {
			return store.Result{}, fmt.Errorf("the store is at revision %d: there is no earlier revision", cur)
		}
		to = cur - 1
	}
	return a.opts.Store.RollbackTo(to, source)
}

const historyHTML = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>leanxds history</title>` + pageStyle + `</head><body>
<h1>History</h1>
<p><a href="/">admin</a> · <a href="?format=json">JSON</a> · <a href="/debug/rollouts">rollouts</a></p>
<p>The store is at revision {{.Revision}}. Each scope's kept revisions, newest first; <b>bold</b>: what the scope serves now.
<code>leanxds rollback --to REV</code> puts every scope back to its content at REV.</p>
<table><tr><th>revision</th><th>time</th><th>scope</th><th>source</th><th>resources</th><th>changes</th></tr>
{{range .Revisions}}<tr><td>{{if .Current}}<b>{{.Revision}}</b>{{else}}{{.Revision}}{{end}}</td><td>{{when .At}}</td><td>{{.Scope}}</td><td>{{.Source}}</td><td>{{.Resources}}</td><td>+{{.Added}} ~{{.Changed}} -{{.Removed}}{{range .Names}} {{.}}{{end}}</td></tr>
{{end}}</table>
</body></html>
`
