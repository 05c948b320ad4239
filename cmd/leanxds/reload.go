package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/leanxds/leanxds/admin"
)

// `leanxds reload` asks a running serve, through its admin server, to reload
// its config directory now (POST /reload), and with --confirm to apply a
// reload the deletion guard holds back (POST /reload?confirm=true).

const reloadAbout = `
Ask a running leanxds serve to read its config directory again now, through its
admin server, and print what became of it: applied, unchanged, rejected (the
errors, one a line) or held. The server reads the files once they are quiet, as
after a change. A server with --admin-token needs it, as do its /debug/ pages;
without one, it answers callers on its own host only.

A reload that would delete more than --max-delete-fraction of a type's resources
in a scope is held back: the server keeps serving its last good config, and
says so on its admin page, /readyz and leanxds_config_reload_held. --confirm
applies it, provided the files still hold what was held; if they changed since,
the new content is checked afresh and may be held in turn.

The exit status is 0 when the directory was applied or unchanged, 1 otherwise
(held, rejected, busy, refused or unreachable server), 2 for a bad command line.`

// runReload is `leanxds reload`.
func runReload(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("reload", "leanxds reload [--admin ADDR] [--confirm]", reloadAbout, stderr)
	c.helpOut = stdout
	cl := &adminClient{cmd: "reload"}
	var confirm bool
	c.fs.BoolVar(&confirm, "confirm", false, "apply a reload held back because it would delete too much")
	cl.addFlags(c.fs, time.Minute)
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageErrorf("reload: unexpected argument %q", c.fs.Arg(0))
	}
	if err := cl.setup(env); err != nil {
		return err
	}
	path := "/reload"
	if confirm {
		path += "?confirm=true"
	}
	// A held (409), rejected (422) or busy (503) reload answers its outcome.
	body, _, err := cl.call(ctx, http.MethodPost, path, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
	if err != nil {
		return err
	}
	var a admin.ReloadResult
	if err := json.Unmarshal(body, &a); err != nil || a.Outcome == "" {
		return fmt.Errorf("reload: %s%s answered: %s", cl.base, path, strings.TrimSpace(string(body)))
	}
	switch a.Outcome {
	case admin.ReloadApplied:
		fmt.Fprintf(stdout, "applied: revision %d, %d resources set, %d deleted\n", a.Revision, a.Set, a.Deleted)
		// Under serve --rollout, say that it is staged (a server without
		// rollouts, or an older one, does not answer: nothing is said).
		if body, _, err := cl.call(ctx, http.MethodGet, "/debug/rollouts?format=json"); err == nil {
			if p, err := decodeRollout(body); err == nil && p.Rollout != nil && p.Rollout.Target == a.Revision &&
				p.Rollout.Phase == "running" && len(p.Rollout.Plan.Stages) > 0 {
				fmt.Fprintf(stdout, "staged: rollout %s serves it to stage 1 (%s) first; see leanxds rollout status\n",
					p.Rollout.ID, p.Rollout.Plan.Stages[0].Name)
			}
		}
		return nil
	case admin.ReloadUnchanged:
		fmt.Fprintln(stdout, "unchanged: the directory holds what the server last applied from it")
		return nil
	}
	for _, line := range a.Errors {
		fmt.Fprintln(stderr, line)
	}
	fmt.Fprintf(stderr, "%s\n", a.Outcome)
	return errSilent
}
