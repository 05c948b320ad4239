package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// `leanxds rollout status|promote|abort` reads and drives the staged rollout
// of a running serve (serve --rollout) through its admin server.

const rolloutAbout = `
Show or drive the staged rollout of a running leanxds serve (serve --rollout):

  status    the running or most recent rollout: its phase, stage, revisions,
            where the stage's nodes stand (ACKed, NACKed, pending) and its
            events (/debug/rollouts)
  promote   serve the next stage now, without waiting for the stage's ACKs
            or its window (a held rollout goes on)
  abort     roll the change back now: every node is served the content from
            before it

promote and abort change what is served: the server answers them only to a
caller presenting its admin token (--admin-token, --admin-token-file, or
$LEANXDS_ADMIN_TOKEN) or a client certificate signed by its --admin-client-ca;
a server configured with neither refuses them. status answers the callers the
/debug/ pages answer.

The exit status is 0 when the status was shown or the action taken, 1 when
there is no rollout in progress to promote or abort, or the server refused or
did not answer, 2 for a bad command line.`

// runRollout is `leanxds rollout`.
func runRollout(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	action := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	c := newCommand("rollout", "leanxds rollout status|promote|abort [--admin ADDR] [flags]", rolloutAbout, stderr)
	c.helpOut = stdout
	cl := &adminClient{cmd: "rollout"}
	var output, reason string
	c.fs.StringVar(&output, "output", "text", "status's output `format`: text or json (the page's JSON)")
	c.fs.StringVar(&reason, "reason", "", "why you promote or abort, for the rollout's events and the logs")
	cl.addFlags(c.fs, 30*time.Second)
	if err := c.parse(args, env); err != nil {
		return err
	}
	switch {
	case action == "":
		c.usage(c.out)
		return usageErrorf("rollout: want a command: status, promote or abort")
	case action != "status" && action != "promote" && action != "abort":
		return usageErrorf("rollout: unknown command %q: want status, promote or abort", action)
	case c.fs.NArg() > 0:
		return usageErrorf("rollout %s: unexpected argument %q", action, c.fs.Arg(0))
	case output != "text" && output != "json":
		return usageErrorf("rollout: --output %q: want text or json", output)
	}
	cl.cmd = "rollout " + action
	if err := cl.setup(env); err != nil {
		return err
	}
	if action == "status" {
		body, _, err := cl.call(ctx, http.MethodGet, "/debug/rollouts?format=json")
		if err != nil {
			return err
		}
		if output == "json" {
			_, err := stdout.Write(body)
			return err
		}
		page, err := decodeRollout(body)
		if err != nil {
			return fmt.Errorf("rollout status: %s/debug/rollouts: %w", cl.base, err)
		}
		writeRolloutStatus(stdout, page)
		return nil
	}
	if reason == "" {
		reason = "leanxds rollout " + action
	}
	path := "/admin/rollout/" + action + "?reason=" + url.QueryEscape(reason)
	body, _, err := cl.call(ctx, http.MethodPost, path)
	if ae, ok := errors.AsType[*adminError](err); ok && ae.code == http.StatusConflict {
		return fmt.Errorf("%s: %s", cl.cmd, ae.msg)
	}
	if err != nil {
		return err
	}
	page, err := decodeRollout(body)
	if err != nil {
		return fmt.Errorf("%s: %w", cl.cmd, err)
	}
	writeRolloutStatus(stdout, page)
	return nil
}

// rolloutPage is what the commands read of the admin server's rollout JSON
// (admin.RolloutPage).
type rolloutPage struct {
	Rollout *struct {
		ID    string `json:"id"`
		Phase string `json:"phase"`
		Plan  struct {
			Stages []struct {
				Name string `json:"name"`
			} `json:"stages"`
			Window    time.Duration `json:"window"`
			MaxNACKs  int           `json:"max_nacks"`
			OnTimeout string        `json:"on_timeout"`
		} `json:"plan"`
		Stage   int      `json:"stage"`
		Base    uint64   `json:"base"`
		Target  uint64   `json:"target"`
		Scopes  []string `json:"scopes"`
		Applied struct {
			Nodes []struct {
				NodeID    string `json:"node_id"`
				Scope     string `json:"scope"`
				State     string `json:"state"`
				Revision  uint64 `json:"revision"`
				Rejection *struct {
					TypeURL string `json:"type_url"`
					Version string `json:"version"`
					Detail  string `json:"detail"`
				} `json:"rejection"`
			} `json:"nodes"`
			ACKed   int `json:"acked"`
			NACKed  int `json:"nacked"`
			Pending int `json:"pending"`
		} `json:"applied"`
		StartedAt      time.Time `json:"started_at"`
		StageStartedAt time.Time `json:"stage_started_at"`
		Events         []struct {
			At         time.Time `json:"at"`
			What       string    `json:"what"`
			Stage      int       `json:"stage"`
			Message    string    `json:"message"`
			Rejections []struct {
				TypeURL string `json:"type_url"`
				Detail  string `json:"detail"`
			} `json:"rejections"`
		} `json:"events"`
	} `json:"rollout"`
}

func decodeRollout(body []byte) (rolloutPage, error) {
	var p rolloutPage
	if err := json.Unmarshal(body, &p); err != nil {
		return p, fmt.Errorf("not a rollout status: %w", err)
	}
	return p, nil
}

// writeRolloutStatus prints a rollout status for people.
func writeRolloutStatus(w io.Writer, p rolloutPage) {
	r := p.Rollout
	if r == nil {
		fmt.Fprintln(w, "no rollout since the server started")
		return
	}
	stage := fmt.Sprint(r.Stage + 1)
	if r.Stage < len(r.Plan.Stages) {
		stage += " (" + r.Plan.Stages[r.Stage].Name + ")"
	}
	names := make([]string, len(r.Plan.Stages))
	for i, s := range r.Plan.Stages {
		names[i] = s.Name
	}
	fmt.Fprintf(w, "rollout %s: %s, stage %s of %d: %s\n", r.ID, r.Phase, stage, len(r.Plan.Stages), strings.Join(names, " → "))
	fmt.Fprintf(w, "  revisions  base %d, target %d; scopes %s\n", r.Base, r.Target, strings.Join(r.Scopes, ", "))
	fmt.Fprintf(w, "  started    %s; this stage %s\n", r.StartedAt.UTC().Format(time.RFC3339), r.StageStartedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  nodes      %d ACKed, %d NACKed, %d pending of the stage\n", r.Applied.ACKed, r.Applied.NACKed, r.Applied.Pending)
	for _, n := range r.Applied.Nodes {
		line := fmt.Sprintf("    %s (scope %s): %s", n.NodeID, n.Scope, n.State)
		if n.Rejection != nil {
			line += fmt.Sprintf(": %s %s: %s", n.Rejection.TypeURL, n.Rejection.Version, n.Rejection.Detail)
		}
		fmt.Fprintln(w, line)
	}
	if len(r.Events) > 0 {
		fmt.Fprintln(w, "  events")
		for _, e := range r.Events {
			fmt.Fprintf(w, "    %s  %s (stage %d): %s\n", e.At.UTC().Format(time.RFC3339), e.What, e.Stage+1, e.Message)
			for _, rj := range e.Rejections {
				fmt.Fprintf(w, "      NACK %s: %s\n", rj.TypeURL, rj.Detail)
			}
		}
	}
}
