package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/leanxds/leanxds/admin"
)

// `leanxds history` lists the revisions a running serve keeps of each scope
// (its /debug/history page).

const historyAbout = `
List the revisions a running leanxds serve keeps of each scope (serve --history,
10 by default), newest first: the revision number, when it was committed, by
what (the config directory, a rollback, a restored snapshot...), how many
resources the scope held, and what changed (+ added, ~ changed, - removed, with
the first names). A commit that changed several scopes is a line per scope.
A revision listed is one 'leanxds rollback --to' can put back.

It reads the admin server's /debug/history, which answers the callers its
/debug/ pages answer: those presenting the admin token or a client certificate
of its --admin-client-ca, or, on a server without a token, callers on its host.

The exit status is 0 when the history was listed, 1 when the server refused or
did not answer, 2 for a bad command line.`

// runHistory is `leanxds history`.
func runHistory(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("history", "leanxds history [--admin ADDR] [--scope NAME] [--output table|json]", historyAbout, stderr)
	c.helpOut = stdout
	cl := &adminClient{cmd: "history"}
	var scope, output string
	c.fs.StringVar(&scope, "scope", "", "list this `scope`'s revisions only")
	c.fs.StringVar(&output, "output", "table", "output `format`: table or json (the page's JSON)")
	cl.addFlags(c.fs, 10*time.Second)
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageErrorf("history: unexpected argument %q", c.fs.Arg(0))
	}
	if output != "table" && output != "json" {
		return usageErrorf("history: --output %q: want table or json", output)
	}
	if err := cl.setup(env); err != nil {
		return err
	}
	page, raw, err := cl.history(ctx, scope)
	if err != nil {
		return err
	}
	if output == "json" {
		_, err := stdout.Write(raw)
		return err
	}
	writeHistory(stdout, page)
	return nil
}

// history reads /debug/history, of one scope if scope is set.
func (c *adminClient) history(ctx context.Context, scope string) (admin.HistoryPage, []byte, error) {
	path := "/debug/history?format=json"
	if scope != "" {
		path += "&scope=" + url.QueryEscape(scope)
	}
	body, _, err := c.call(ctx, http.MethodGet, path)
	if err != nil {
		return admin.HistoryPage{}, nil, err
	}
	var page admin.HistoryPage
	if err := json.Unmarshal(body, &page); err != nil {
		return admin.HistoryPage{}, nil, fmt.Errorf("%s: %s%s: not a history page: %w", c.cmd, c.base, path, err)
	}
	return page, body, nil
}

// writeHistory prints the history as a table.
func writeHistory(w io.Writer, page admin.HistoryPage) {
	if len(page.Revisions) == 0 {
		fmt.Fprintf(w, "no revision kept (the store is at revision %d)\n", page.Revision)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tTIME\tSCOPE\tSOURCE\tRESOURCES\tCHANGES")
	for _, e := range page.Revisions {
		rev := fmt.Sprint(e.Revision)
		if e.Current {
			rev += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", rev, e.At.UTC().Format(time.RFC3339), e.Scope, e.Source, e.Resources, changes(e))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "(* what the scope serves now)")
}

// changes sums up what a revision changed: "+1 ~2 -0: +CDS/web ~LDS/main ...".
func changes(e admin.HistoryEntry) string {
	s := fmt.Sprintf("+%d ~%d -%d", e.Added, e.Changed, e.Removed)
	if len(e.Names) == 0 {
		return s
	}
	const shown = 5
	names := e.Names
	more := ""
	if total := e.Added + e.Changed + e.Removed; len(names) > shown || total > len(names) {
		names = names[:min(shown, len(names))]
		more = fmt.Sprintf(" (+%d more)", total-len(names))
	}
	return s + ": " + strings.Join(names, " ") + more
}
