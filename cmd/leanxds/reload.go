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

The exit status is 0 when the directory was applied or unchanged, 1 otherwise.`

type reloadOptions struct {
	admin      string
	adminToken string
	confirm    bool
	timeout    time.Duration
}

// runReload is `leanxds reload`.
func runReload(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("reload", "leanxds reload [--admin ADDR] [--confirm]", reloadAbout, stderr)
	c.helpOut = stdout
	o := &reloadOptions{}
	c.fs.StringVar(&o.admin, "admin", defaultAdminAddr, "`address` of the server's admin HTTP server (its --admin)")
	c.fs.BoolVar(&o.confirm, "confirm", false, "apply a reload held back because it would delete too much")
	c.fs.StringVar(&o.adminToken, "admin-token", "", "the server's --admin-token, for a server that sets one or that is not on this host;\n"+
		"default: $"+adminTokenEnv+", the variable serve reads it from")
	c.fs.DurationVar(&o.timeout, "timeout", time.Minute, "how long to wait for the server")
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageErrorf("reload: unexpected argument %q", c.fs.Arg(0))
	}
	if o.adminToken == "" {
		// As dump: the token is the same secret on both sides.
		o.adminToken, _ = env(adminTokenEnv)
	}
	base := o.admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	url := strings.TrimSuffix(base, "/") + "/reload"
	if o.confirm {
		url += "?confirm=true"
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return usageErrorf("reload: --admin %q: %v", o.admin, err)
	}
	if o.adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.adminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reload: %s: %w", url, err)
	}
	var a admin.ReloadResult
	if err := json.Unmarshal(body, &a); err != nil || a.Outcome == "" {
		var refused struct{ Error string }
		if json.Unmarshal(body, &refused) == nil && refused.Error != "" {
			return fmt.Errorf("reload: %s: %s", resp.Status, refused.Error)
		}
		return fmt.Errorf("reload: %s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	switch a.Outcome {
	case admin.ReloadApplied:
		fmt.Fprintf(stdout, "applied: revision %d, %d resources set, %d deleted\n", a.Revision, a.Set, a.Deleted)
		return nil
	case admin.ReloadUnchanged:
		fmt.Fprintln(stdout, "unchanged: the server already serves what the directory holds")
		return nil
	}
	for _, line := range a.Errors {
		fmt.Fprintln(stderr, line)
	}
	fmt.Fprintf(stderr, "%s\n", a.Outcome)
	return errSilent
}
