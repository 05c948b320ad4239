package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/leanxds/leanxds/admin"
)

// `leanxds rollback` is the big red button: every scope of a running serve
// back to its content at an earlier revision, for every node at once
// (POST /admin/rollback).

const rollbackAbout = `
Put every scope of a running leanxds serve back to its content at an earlier
revision, for every node at once, in one commit: since versions are digests of
content, every node is sent exactly the version strings it held then. A scope
created after that revision is emptied; a scope whose kept history (serve
--history) does not reach back that far fails the rollback, which then changes
nothing. A staged rollout in progress ends.

--to REV names the revision ('leanxds history' lists them); without it, the
base of the rollout in progress, or, with none, the revision before the
newest: the last change is undone.

Without --yes nothing is done: the command shows what each scope would go back
to, and exits 3. With --yes it rolls back and prints the revision it committed.

A rollback stands until the config changes: the config directory is applied
again only once its files change (or 'leanxds reload' finds them changed).

POST /admin/rollback changes what is served: the server answers it only to a
caller presenting its admin token (--admin-token, --admin-token-file, or
$LEANXDS_ADMIN_TOKEN) or a client certificate signed by its --admin-client-ca;
a server configured with neither refuses it.

The exit status is 0 when rolled back (or nothing differed), 1 when the server
refused or failed the rollback or did not answer, 2 for a bad command line, 3
without --yes.`

// runRollback is `leanxds rollback`.
func runRollback(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("rollback", "leanxds rollback [--to REV] [--yes] [--admin ADDR]", rollbackAbout, stderr)
	c.helpOut = stdout
	cl := &adminClient{cmd: "rollback"}
	var to uint64
	var yes bool
	c.fs.Uint64Var(&to, "to", 0, "the `revision` to put back (leanxds history); 0: the revision before the newest")
	c.fs.BoolVar(&yes, "yes", false, "roll back: without it, only show what would be put back")
	cl.addFlags(c.fs, 30*time.Second)
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageErrorf("rollback: unexpected argument %q", c.fs.Arg(0))
	}
	if err := cl.setup(env); err != nil {
		return err
	}
	if !yes {
		page, _, err := cl.history(ctx, "")
		if err != nil {
			return err
		}
		if to == 0 {
			// A rollout in progress is rolled back to its base.
			if body, _, err := cl.call(ctx, http.MethodGet, "/debug/rollouts?format=json"); err == nil {
				if ro, err := decodeRollout(body); err == nil && ro.Rollout != nil &&
					(ro.Rollout.Phase == "running" || ro.Rollout.Phase == "held") {
					to = ro.Rollout.Base
					fmt.Fprintf(stdout, "rollout %s is %s: its base is put back\n", ro.Rollout.ID, ro.Rollout.Phase)
				}
			}
		}
		if err := writeRollbackPlan(stdout, page, to); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		fmt.Fprintln(stderr, "nothing done: run again with --yes to roll back every node")
		return exitStatus{code: 3}
	}
	path := "/admin/rollback"
	if to != 0 {
		path += fmt.Sprintf("?to=%d", to)
	}
	body, _, err := cl.call(ctx, http.MethodPost, path)
	if err != nil {
		return err
	}
	var r admin.RollbackResult
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("rollback: %s%s: not a rollback result: %w", cl.base, path, err)
	}
	what := "the revision before the newest"
	if r.To != 0 {
		what = fmt.Sprintf("revision %d", r.To)
	}
	if !r.Changed {
		fmt.Fprintf(stdout, "unchanged: every scope already holds its content of %s\n", what)
		return nil
	}
	fmt.Fprintf(stdout, "rolled back to %s: revision %d, %d resources set, %d deleted\n", what, r.Revision, r.Set, r.Deleted)
	return nil
}

// writeRollbackPlan prints what a rollback to revision to (0: the one before
// the newest) would put back in each scope, from the history page.
func writeRollbackPlan(w io.Writer, page admin.HistoryPage, to uint64) error {
	if to == 0 {
		if page.Revision < 2 {
			return fmt.Errorf("the server is at revision %d: there is no earlier revision", page.Revision)
		}
		to = page.Revision - 1
		fmt.Fprintf(w, "rollback to revision %d (the one before the newest, %d):\n", to, page.Revision)
	} else {
		fmt.Fprintf(w, "rollback to revision %d (the newest is %d):\n", to, page.Revision)
	}
	if to > page.Revision {
		return fmt.Errorf("revision %d is past the newest, %d", to, page.Revision)
	}
	byScope := make(map[string][]admin.HistoryEntry)
	var scopes []string
	for _, e := range page.Revisions {
		if _, seen := byScope[e.Scope]; !seen {
			scopes = append(scopes, e.Scope)
		}
		byScope[e.Scope] = append(byScope[e.Scope], e) // newest first
	}
	slices.Sort(scopes)
	for _, scope := range scopes {
		entries := byScope[scope]
		cur := entries[0]
		i := slices.IndexFunc(entries, func(e admin.HistoryEntry) bool { return e.Revision <= to })
		switch {
		case i == 0:
			fmt.Fprintf(w, "  scope %q: unchanged (revision %d, %d resources)\n", scope, cur.Revision, cur.Resources)
		case i > 0:
			then := entries[i]
			fmt.Fprintf(w, "  scope %q: revision %d (%d resources) back to revision %d of %s, by %s (%d resources)\n",
				scope, cur.Revision, cur.Resources, then.Revision, then.At.UTC().Format(time.RFC3339), then.Source, then.Resources)
		default:
			oldest := entries[len(entries)-1]
			fmt.Fprintf(w, "  scope %q: no kept revision at or before %d (the oldest kept is %d): emptied if the scope is newer, else the rollback fails\n",
				scope, to, oldest.Revision)
		}
	}
	return nil
}
