package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leanxds/leanxds/rollout"
	"github.com/leanxds/leanxds/rollout/etcdrollout"
	"github.com/leanxds/leanxds/source"
)

const applyAbout = `
Write a config directory to etcd, where replicas serving --source etcd://...
read it (docs/etcd.md). The directory is read and checked exactly as validate
checks it; then it is compared, resource by resource and by content, with what
the prefix's current generation holds, and the difference is printed:

  + SCOPE/TYPE/NAME   added
  ~ SCOPE/TYPE/NAME   changed
  - SCOPE/TYPE/NAME   deleted

and a summary line last. With --dry-run nothing is written. Otherwise the
change is written atomically: a change that fits one etcd txn (--max-txn-ops,
--max-txn-bytes: etcd's limits) in place, in one txn; a larger one as a new
generation written in several txns, then made current in one. Replicas see
all of the old content or all of the new. Applying the same directory again
writes nothing.

With --rollout 1%,10%,100% the change is staged (docs/etcd.md, "Rollouts
with replicas"): it is written as a new generation, made current with the
rollout's state in one txn, and the replicas serve it to the nodes of the
first stage only, the others keeping the generation served before (the base);
a stage whose nodes all ACK within --rollout-window leads to the next, and
--rollout-max-nacks NACKs put the base back everywhere. A stage is a share of
the nodes (10%, by a hash of the node id), node ids (ids=a|b) or a field of
node metadata (metadata.key=value). A staged apply
while a rollout runs supersedes it: the new change starts at the first stage,
over the same base. An apply without --rollout while a rollout runs is refused.

If another writer changes the prefix between the read and the write (another
apply, a hand edit, a rollout's decision), nothing is applied and the exit
status is 3: apply again.

Exit status: 0 applied, or nothing to apply; 1 the directory is invalid, or
etcd failed; 2 a bad command line; 3 another writer won, nothing applied.
--output json prints one JSON object instead of the diff and summary.

etcd credentials come from LEANXDS_ETCD_USERNAME and LEANXDS_ETCD_PASSWORD.`

// runApply is `leanxds apply DIR --to etcd://.../prefix`.
func runApply(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("apply", "leanxds apply DIR --to etcd://HOST:PORT[,HOST:PORT...]/PREFIX [flags]", applyAbout, stderr)
	c.helpOut = stdout
	to := c.fs.String("to", "", "where to write: `etcd://host:port[,host:port...]/prefix` (the address replicas read with --source)")
	dryRun := c.fs.Bool("dry-run", false, "print the difference and write nothing")
	output := c.fs.String("output", "text", "`text` (the difference, then a summary line) or json (one object)")
	quiet := c.fs.Bool("quiet", false, "text output: print the summary line only, not each key")
	timeout := c.fs.Duration("timeout", 10*time.Minute, "give up, writing nothing more, after this long")
	var eo source.EtcdClientOptions
	c.fs.StringVar(&eo.CAFile, "etcd-ca", "", "verify etcd's certificates with this CA `file` (PEM); turns TLS on")
	c.fs.StringVar(&eo.CertFile, "etcd-cert", "", "client certificate `file` (PEM) for etcd; turns TLS on")
	c.fs.StringVar(&eo.KeyFile, "etcd-key", "", "client key `file` (PEM) for --etcd-cert")
	var opts source.ApplyOptions
	c.fs.IntVar(&opts.MaxTxnOps, "max-txn-ops", source.DefaultMaxTxnOps, "the most `operations` in one etcd txn (etcd's --max-txn-ops); a larger change is written as a new generation")
	c.fs.IntVar(&opts.MaxTxnBytes, "max-txn-bytes", source.DefaultMaxTxnBytes, "the most `bytes` in one etcd txn (etcd's --max-request-bytes)")
	c.fs.BoolVar(&opts.Dir.AllowDangling, "allow-dangling", false, "apply a directory whose resources refer to ones their scope does not define, with warnings, as validate --allow-dangling accepts it")
	c.fs.Int64Var(&opts.Dir.MaxFileBytes, "max-file-bytes", source.DefaultMaxFileBytes, "refuse a resource file larger than this many `bytes`, as serve does")
	c.fs.Int64Var(&opts.Dir.MaxDirBytes, "max-dir-bytes", source.DefaultMaxDirBytes, "refuse a directory whose resource files hold more than this many `bytes` together, as serve does")
	stages := c.fs.String("rollout", "", "stage the change: `stages` such as 1%,10%,100% or ids=edge-1|edge-2,100% (a last stage of every node is added)")
	var plan rollout.Plan
	c.fs.DurationVar(&plan.Window, "rollout-window", rollout.DefaultWindow, "with --rollout: how long a stage's nodes have to ACK")
	c.fs.IntVar(&plan.MaxNACKs, "rollout-max-nacks", 1, "with --rollout: how many of a stage's nodes must NACK for the change to be rolled back")
	onTimeout := c.fs.String("rollout-on-timeout", string(rollout.Hold), "with --rollout: what a stage does when its window ends first: `hold` (wait for leanxds rollout promote or abort) or rollback")
	dir, err := parseWithOneArg(c, args, env)
	if err != nil {
		return err
	}
	switch {
	case dir == "":
		return usageErrorf("apply: name one config directory")
	case *to == "":
		return usageErrorf("apply: --to etcd://host:port/prefix is required")
	case *output != "text" && *output != "json":
		return usageErrorf("apply: --output %q: want text or json", *output)
	case opts.MaxTxnOps <= 0 || opts.MaxTxnBytes <= 0:
		return usageErrorf("apply: --max-txn-ops and --max-txn-bytes must be positive")
	case opts.Dir.MaxFileBytes <= 0 || opts.Dir.MaxDirBytes <= 0:
		return usageErrorf("apply: --max-file-bytes and --max-dir-bytes must be positive")
	case plan.Window <= 0 || plan.MaxNACKs <= 0:
		return usageErrorf("apply: --rollout-window and --rollout-max-nacks must be positive")
	}
	if *stages != "" {
		if plan.Stages, err = rollout.ParseStages(*stages); err != nil {
			return usageErrorf("apply: --rollout: %v", err)
		}
		plan.OnTimeout = rollout.Action(*onTimeout)
		start, err := etcdrollout.Start(plan, applier(), nil)
		if err != nil {
			return usageErrorf("apply: --rollout: %v", err)
		}
		opts.Rollout = start
	}
	addr, err := source.ParseEtcdAddress(*to)
	if err != nil {
		return usageErrorf("apply: --to: %v", err)
	}
	eo.Username, eo.Password = source.EtcdCredentialsFromEnv(func(k string) string { v, _ := env(k); return v })
	cfg, err := source.EtcdConfig(addr, eo)
	if err != nil {
		return usageErrorf("apply: %v", err)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return fmt.Errorf("apply: %s: %w", addr, err)
	}
	defer cli.Close()
	opts.DryRun = *dryRun
	opts.By = applier()

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := source.ApplyEtcd(ctx, cli, addr.Prefix, dir, opts)
	if *output == "json" {
		return printApplyJSON(stdout, res, err)
	}
	return printApplyText(stdout, stderr, res, err, *quiet)
}

// parseWithOneArg parses flags given before and after the one positional
// argument (apply DIR --to ... as well as apply --to ... DIR), and returns it:
// "" when there is none. More than one is a usage error.
func parseWithOneArg(c *command, args []string, env lookupEnv) (string, error) {
	if err := c.parse(args, env); err != nil {
		return "", err
	}
	if c.fs.NArg() == 0 {
		return "", nil
	}
	arg, rest := c.fs.Arg(0), c.fs.Args()[1:]
	if err := c.parse(rest, env); err != nil {
		return "", err
	}
	if c.fs.NArg() > 0 {
		return "", usageErrorf("apply: one config directory, not %q and %q", arg, c.fs.Args())
	}
	return arg, nil
}

// applier names who applies, for <prefix>/applied: user@host.
func applier() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return name + "@" + host
}

// applyExit maps apply's error to its exit status: 3 for a lost race, 1 for
// anything else.
func applyExit(err error) error {
	if errors.Is(err, source.ErrApplyConflict) {
		return exitStatus{3}
	}
	return errSilent
}

// printApplyText prints the difference, one key a line, then the summary
// line; an error goes to stderr, an invalid directory's problems one a line
// as validate prints them.
func printApplyText(stdout, stderr io.Writer, res source.ApplyResult, err error, quiet bool) error {
	if ide, ok := errors.AsType[*source.InvalidDirError](err); ok {
		for _, line := range source.ErrorLines(ide.Err) {
			fmt.Fprintln(stderr, line)
		}
		fmt.Fprintf(stderr, "%s: invalid: nothing applied\n", ide.Dir)
		return errSilent
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if res.Mode != "" && !quiet {
		for _, k := range res.Added {
			fmt.Fprintln(stdout, "+", k)
		}
		for _, k := range res.Changed {
			fmt.Fprintln(stdout, "~", k)
		}
		for _, k := range res.Deleted {
			fmt.Fprintln(stdout, "-", k)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "leanxds: %v\n", err)
		return applyExit(err)
	}
	fmt.Fprintf(stdout, "%s: %s\n", res.Prefix, res.Summary())
	return nil
}

// applyJSON is what --output json prints: the result, and the error if any.
type applyJSON struct {
	source.ApplyResult
	Summary string `json:"summary,omitempty"`
	// Error is why nothing was applied; Conflict is set when another writer
	// won (exit status 3).
	Error    string   `json:"error,omitempty"`
	Conflict bool     `json:"conflict,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

func printApplyJSON(stdout io.Writer, res source.ApplyResult, err error) error {
	out := applyJSON{ApplyResult: res}
	for _, keys := range []*[]string{&out.Added, &out.Changed, &out.Deleted} {
		if *keys == nil {
			*keys = []string{} // [] rather than null, for scripts
		}
	}
	if err == nil {
		out.Summary = res.Summary()
	} else {
		out.Error = err.Error()
		out.Conflict = errors.Is(err, source.ErrApplyConflict)
		if ide, ok := errors.AsType[*source.InvalidDirError](err); ok {
			out.Errors = source.ErrorLines(ide.Err)
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if e := enc.Encode(out); e != nil {
		return e
	}
	if err != nil {
		return applyExit(err)
	}
	return nil
}
