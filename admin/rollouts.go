package admin

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/store"
)

// Rollouts is the staged rollouts of the store: a *rollout.Manager. The admin
// server shows the running or most recent one on /debug/rollouts, and drives
// it with POST /admin/rollout/promote, /admin/rollout/abort and
// /admin/rollback. If it is a prometheus.Collector, New registers it on the
// metrics.
type Rollouts interface {
	// Status returns the running or most recent rollout; false if there was
	// none.
	Status() (rollout.Status, bool)
	// Promote starts the next stage of the running rollout now;
	// rollout.ErrNoRollout when none runs.
	Promote(reason string) error
	// Abort rolls the running rollout back now; rollout.ErrNoRollout when
	// none runs.
	Abort(reason string) error
	// Rollback ends any rollout and commits every scope's content as it was
	// at revision to (0: the revision before the newest); source labels the
	// commit in the history.
	Rollback(to uint64, source string) (store.Result, error)
}

// RolloutRouter is a Rollouts that can tell what it serves a node without
// serving it: Peek returns the view the node would be served now (a
// rollout's base to a node no stage of it selects yet, cur otherwise), and
// records nothing of the node. When Options.Rollouts is one (a
// *rollout.Manager, an etcdrollout.Replica), /debug/fleet judges whether a
// node outside a rollout's stage is current against that view rather than
// the store's newest.
type RolloutRouter interface {
	Peek(scope string, node *corev3.Node, cur store.View) store.View
}

var _ RolloutRouter = (*rollout.Manager)(nil)

// RolloutPage is the JSON of /debug/rollouts and the answer of POST
// /admin/rollout/promote and /admin/rollout/abort.
type RolloutPage struct {
	// Rollout is the running or most recent rollout; nil if there was none.
	Rollout *rollout.Status `json:"rollout"`
}

// RollbackResult is the answer of POST /admin/rollback.
type RollbackResult struct {
	// To is the revision asked for (0: the revision before the newest).
	To uint64 `json:"to"`
	// Revision is the revision the rollback committed; 0 when the store
	// already held that content (Changed is false).
	Revision uint64 `json:"revision"`
	Changed  bool   `json:"changed"`
	Set      int    `json:"set"`
	Deleted  int    `json:"deleted"`
}

// rolloutPage reads the rollout status.
func (a *Admin) rolloutPage() RolloutPage {
	st, ok := a.opts.Rollouts.Status()
	if !ok {
		return RolloutPage{}
	}
	return RolloutPage{Rollout: &st}
}

// handleRollouts is GET /debug/rollouts: the running or most recent rollout,
// as JSON with ?format=json, as HTML otherwise.
func (a *Admin) handleRollouts(w http.ResponseWriter, r *http.Request) {
	page := a.rolloutPage()
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, page)
		return
	}
	writeHTML(w, a.pages.Lookup("rollouts"), page)
}

// handleRolloutAction is POST /admin/rollout/promote and /abort.
func (a *Admin) handleRolloutAction(action string, do func(reason string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The reason is kept in the rollout's events and state: bounded as a
		// NACK's detail is.
		reason := rollout.BoundDetail(r.URL.Query().Get("reason"))
		if reason == "" {
			reason = action + " through the admin server"
		}
		if err := do(reason); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, rollout.ErrNoRollout) {
				code = http.StatusConflict
			}
			writeJSONError(w, code, "%s: %v", action, err)
			return
		}
		writeJSON(w, http.StatusOK, a.rolloutPage())
	}
}

// handleRollback is POST /admin/rollback?to=REV: every scope back to its
// content at REV, for every node at once (the revision before the newest
// without ?to).
func (a *Admin) handleRollback(w http.ResponseWriter, r *http.Request) {
	var to uint64
	if v := r.URL.Query().Get("to"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			writeJSONError(w, http.StatusBadRequest, "to=%q: want a revision number (leanxds history lists them)", v)
			return
		}
		to = n
	}
	source := "rollback (admin)"
	if to != 0 {
		source = fmt.Sprintf("rollback to %d (admin)", to)
	}
	res, err := a.rollback(to, source)
	if err != nil {
		writeJSONError(w, http.StatusUnprocessableEntity, "rollback: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, RollbackResult{To: to, Revision: res.Revision, Changed: res.Changed(), Set: res.Set, Deleted: res.Deleted})
}

// wantsJSON reports whether a page is asked for as JSON (?format=json).
func wantsJSON(r *http.Request) bool { return r.URL.Query().Get("format") == "json" }

// writeHTML renders a page with t.
func writeHTML(w http.ResponseWriter, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := t.Execute(w, data); err != nil {
		// The header is sent: say so in the page.
		fmt.Fprintf(w, "\n<p>error rendering the page: %s</p>\n", template.HTMLEscapeString(err.Error()))
	}
}

// htmlPages parses the HTML pages (/debug/rollouts, /debug/history), once
// per Admin: templates are values their owner holds, not package state.
func htmlPages() *template.Template {
	funcs := template.FuncMap{
		// next numbers stages from 1, as people do.
		"next": func(i int) int { return i + 1 },
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		},
	}
	t := template.New("pages").Funcs(funcs)
	template.Must(t.New("rollouts").Parse(rolloutsHTML))
	template.Must(t.New("history").Parse(historyHTML))
	return t
}

const pageStyle = `<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}` +
	`td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}th{background:#f4f4f4}</style>`

const rolloutsHTML = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>leanxds rollouts</title>` + pageStyle + `</head><body>
<h1>Rollouts</h1>
<p><a href="/">admin</a> · <a href="?format=json">JSON</a> · <a href="/debug/history">history</a></p>
{{with .Rollout}}
<table>
<tr><th>id</th><td>{{.ID}}</td></tr>
<tr><th>phase</th><td><b>{{.Phase}}</b></td></tr>
<tr><th>stage</th><td>{{next .Stage}}{{if lt .Stage (len .Plan.Stages)}} ({{(index .Plan.Stages .Stage).Name}}){{end}} of {{len .Plan.Stages}}:{{range $i, $s := .Plan.Stages}} {{if $i}}→ {{end}}{{$s.Name}}{{end}}</td></tr>
<tr><th>revisions</th><td>base {{.Base}}, target {{.Target}}</td></tr>
<tr><th>scopes</th><td>{{range $i, $s := .Scopes}}{{if $i}}, {{end}}{{$s}}{{end}}</td></tr>
<tr><th>window</th><td>{{.Plan.Window}}{{if .Plan.OnTimeout}}, then {{.Plan.OnTimeout}}{{end}}; rolled back at {{if .Plan.MaxNACKs}}{{.Plan.MaxNACKs}}{{else}}1{{end}} NACK(s)</td></tr>
<tr><th>started</th><td>{{when .StartedAt}}; this stage {{when .StageStartedAt}}</td></tr>
<tr><th>stage's nodes</th><td>{{.Applied.ACKed}} ACKed, {{.Applied.NACKed}} NACKed, {{.Applied.Pending}} pending (against revision {{.Applied.Revision}})</td></tr>
</table>
{{if .Applied.Nodes}}
<h2>Nodes of the stage</h2>
<table><tr><th>node</th><th>scope</th><th>state</th><th>revision</th><th>NACK</th></tr>
{{range .Applied.Nodes}}<tr><td>{{.NodeID}}</td><td>{{.Scope}}</td><td>{{.State}}</td><td>{{.Revision}}</td><td>{{with .Rejection}}{{.TypeURL}} {{.Version}}: {{.Detail}}{{end}}</td></tr>
{{end}}</table>
{{end}}
<h2>Events</h2>
<table><tr><th>at</th><th>what</th><th>stage</th><th>message</th></tr>
{{range .Events}}<tr><td>{{when .At}}</td><td>{{.What}}</td><td>{{next .Stage}}</td><td>{{.Message}}{{range .Rejections}}<br>NACK {{.TypeURL}} {{.Version}}: {{.Detail}}{{end}}</td></tr>
{{end}}</table>
{{else}}
<p>No rollout since start.</p>
{{end}}
</body></html>
`
