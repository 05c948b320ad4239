package main

import (
	"context"
	"fmt"
	"io"

	"github.com/leanxds/leanxds/source"
)

const validateAbout = `
Check config directories offline, as serve would read them: every file is parsed
and validated, and the whole directory is committed to a scratch store. Errors
(file, line, resource and field) are printed one a line and the exit status is 1.

A resource that refers to one its scope does not define (a route to a missing
cluster, a listener's missing route configuration, an EDS cluster's missing
endpoints, a missing SDS secret) is an error too, as serve refuses such a
directory: each is printed with its file, scope and both resources. With
--allow-dangling they are printed as warnings and do not fail the check, as
serve --allow-dangling serves them.

A client's bootstrap (an Envoy bootstrap with dynamic_resources, a gRPC one with
xds_servers) is skipped, and listed; an Envoy static config is refused: it is
not resources. A directory of bootstraps and no resource fails the check.

A file larger than --max-file-bytes, or a directory whose files hold more than
--max-dir-bytes together, is refused before it is read, as serve refuses it.`

// runValidate is `leanxds validate DIR...`.
func runValidate(_ context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("validate", "leanxds validate [--allow-dangling] DIR...", validateAbout, stderr)
	c.helpOut = stdout
	allowDangling := c.fs.Bool("allow-dangling", false, "report references to resources a scope does not define as warnings, not errors")
	var opts source.DirOptions
	c.fs.Int64Var(&opts.MaxFileBytes, "max-file-bytes", source.DefaultMaxFileBytes, "refuse a resource file larger than this many `bytes`, as serve does")
	c.fs.Int64Var(&opts.MaxDirBytes, "max-dir-bytes", source.DefaultMaxDirBytes, "refuse a directory whose resource files hold more than this many `bytes` together, as serve does")
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() == 0 {
		return usageErrorf("validate: name a config directory")
	}
	if opts.MaxFileBytes <= 0 || opts.MaxDirBytes <= 0 {
		return usageErrorf("validate: --max-file-bytes and --max-dir-bytes must be positive")
	}
	opts.AllowDangling = *allowDangling
	failed := false
	for _, dir := range c.fs.Args() {
		// Read and checked exactly as a reload of serve reads and checks it.
		sum, warnings, err := source.CheckDir(dir, opts)
		if err != nil {
			failed = true
			for _, line := range source.ErrorLines(err) {
				fmt.Fprintln(stderr, line)
			}
			if source.HasDangling(err) {
				fmt.Fprintf(stderr, "%s: invalid: dangling references (--allow-dangling makes them warnings)\n", dir)
			} else {
				fmt.Fprintf(stderr, "%s: invalid\n", dir)
			}
			continue
		}
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		if sum.Resources() == 0 && len(sum.Bootstraps) > 0 {
			// Most likely the wrong directory: the clients' side, not the config.
			failed = true
			for _, b := range sum.Bootstraps {
				fmt.Fprintf(stderr, "%s: skipped: a client's bootstrap, not resources\n", b)
			}
			fmt.Fprintf(stderr, "%s: invalid: no resources found, only %d client bootstrap file(s), skipped\n", dir, len(sum.Bootstraps))
			continue
		}
		fmt.Fprintf(stdout, "%s: ok: %d resources in %d files, scopes %q\n", dir, sum.Resources(), sum.Files, sum.ScopeNames())
		for _, b := range sum.Bootstraps {
			fmt.Fprintf(stdout, "%s: skipped: a client's bootstrap, not resources\n", b)
		}
	}
	if failed {
		return errSilent
	}
	return nil
}
