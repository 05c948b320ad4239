package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/leanxds/leanxds/admin"
)

// `leanxds fleet` lists every node of the fleet through one replica's
// /debug/fleet. It reads a replica rather than etcd because whether a node is
// current depends on what a replica would send it now, which only a replica,
// holding the config in its store, can tell; and because a replica's admin
// server is what an operator already reaches (with its --admin-token), where
// etcd's credentials also allow writing the config.

const fleetAbout = `
List every node of a fleet of replicas (serve --source etcd://, or --fleet-etcd),
through the admin server of any of them: which replica serves each node, its
scope, and whether it is current, that is holds, for every type it asked for,
what the replica asked would send it now (during a rollout, its target to the
nodes of its stage and its base to the others). Types it does not hold are listed
as BEHIND; ROLLOUT is where a node of the stage stands against the target (acked,
nacked or pending); NACK a rejection of the newest version sent, with its error.

A dead replica's nodes are listed until its lease expires (serve --fleet-ttl).
As with dump, a server with --admin-token needs it; without one, it answers
callers on its own host only.`

type fleetCmdOptions struct {
	admin      string
	adminToken string
	output     string
	notCurrent bool
	timeout    time.Duration
}

// runFleet is `leanxds fleet`.
func runFleet(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("fleet", "leanxds fleet [--admin ADDR] [--not-current] [--output table|json]", fleetAbout, stderr)
	c.helpOut = stdout
	o := &fleetCmdOptions{}
	c.fs.StringVar(&o.admin, "admin", defaultAdminAddr, "`address` of a replica's admin HTTP server (its --admin)")
	c.fs.StringVar(&o.adminToken, "admin-token", "", "the replica's --admin-token; default: $"+adminTokenEnv+", the variable serve reads it from")
	c.fs.StringVar(&o.output, "output", "table", "`format`: table (one line per node) or json (the nodes as /debug/fleet lists them)")
	c.fs.BoolVar(&o.notCurrent, "not-current", false, "list only the nodes that are not current")
	c.fs.DurationVar(&o.timeout, "timeout", time.Minute, "how long the whole listing may take")
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageErrorf("fleet: unexpected argument %q", c.fs.Arg(0))
	}
	if o.output != "table" && o.output != "json" {
		return usageErrorf("fleet: --output %q: want table or json", o.output)
	}
	if o.adminToken == "" {
		o.adminToken, _ = env(adminTokenEnv)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	base := o.admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimSuffix(base, "/")
	var first admin.FleetPage
	var nodes []admin.FleetPageNode
	for path := "/debug/fleet"; path != ""; {
		page, err := o.get(ctx, base+path)
		if err != nil {
			return err
		}
		if path == "/debug/fleet" {
			first = page
		}
		for _, n := range page.Nodes {
			if !o.notCurrent || !n.Current {
				nodes = append(nodes, n)
			}
		}
		path = page.Next
	}
	if o.output == "json" {
		if nodes == nil {
			nodes = []admin.FleetPageNode{}
		}
		b, err := json.MarshalIndent(nodes, "", "  ")
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	return writeFleet(stdout, first, nodes)
}

// get reads one page of /debug/fleet.
func (o *fleetCmdOptions) get(ctx context.Context, url string) (admin.FleetPage, error) {
	var page admin.FleetPage
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return page, usageErrorf("fleet: --admin %q: %v", o.admin, err)
	}
	if o.adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.adminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return page, fmt.Errorf("fleet: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return page, fmt.Errorf("fleet: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return page, fmt.Errorf("fleet: %s has no fleet status: it serves without --source etcd:// or --fleet-etcd", o.admin)
	}
	if resp.StatusCode != http.StatusOK {
		return page, fmt.Errorf("fleet: %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return page, fmt.Errorf("fleet: %s: %w", url, err)
	}
	return page, nil
}

// writeFleet prints the replicas, then one line per node.
func writeFleet(w io.Writer, first admin.FleetPage, nodes []admin.FleetPageNode) error {
	var buf bytes.Buffer
	current := 0
	for _, n := range nodes {
		if n.Current {
			current++
		}
	}
	fmt.Fprintf(&buf, "%d replicas, %d nodes (%d listed, %d of them current)\n", len(first.Replicas), first.Total, len(nodes), current)
	for _, r := range first.Replicas {
		fmt.Fprintf(&buf, "  replica %s  %s  since %s  %s\n", r.ID, r.Addr, r.Started.Format(time.RFC3339), r.Version)
	}
	if len(nodes) > 0 {
		fmt.Fprintln(&buf)
		tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REPLICA\tNODE\tSCOPE\tCURRENT\tBEHIND\tROLLOUT\tNACK")
		for _, n := range nodes {
			cur := "yes"
			if !n.Current {
				cur = "no"
			}
			var behind, nacks []string
			for _, short := range slices.Sorted(maps.Keys(n.Types)) {
				t := n.Types[short]
				if !t.Current {
					behind = append(behind, short)
				}
				if t.NACK != nil && t.NACK.Version == t.Sent {
					nacks = append(nacks, fmt.Sprintf("%s %s: %s", short, t.NACK.Version, strings.ReplaceAll(t.NACK.Error, "\n", " ")))
				}
			}
			if n.Error != "" {
				cur, nacks = "?", []string{"unreadable status: " + n.Error}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Replica, n.Node, n.Scope, cur, orDash(strings.Join(behind, ",")), rolloutCell(n.Rollout), strings.Join(nacks, "; "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// rolloutCell is a node's standing against the stage of the rollout
// running, "r12 stage 2 acked"; "-" when no stage selects it.
func rolloutCell(r *admin.FleetRollout) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%s stage %d %s", r.ID, r.Stage+1, r.State)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
