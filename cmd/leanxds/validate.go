package main

import (
	"context"
	"fmt"
	"io"

	"github.com/leanxds/leanxds/store"
)

const validateAbout = `
Check config directories offline, as serve would read them: every file is parsed
and validated, and the whole directory is committed to a scratch store. Errors
(file, line, resource and field) are printed one a line and the exit status is 1;
references to resources the directory does not define are printed as warnings.`

// runValidate is `leanxds validate DIR...`.
func runValidate(_ context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("validate", "leanxds validate DIR...", validateAbout, stderr)
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() == 0 {
		return usageErrorf("validate: name a config directory")
	}
	failed := false
	for _, dir := range c.fs.Args() {
		cfg, err := checkConfigDir(dir)
		if err != nil {
			failed = true
			for _, line := range errorLines(err) {
				fmt.Fprintln(stderr, line)
			}
			fmt.Fprintf(stderr, "%s: invalid\n", dir)
			continue
		}
		for _, w := range cfg.danglingRefs() {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		fmt.Fprintf(stdout, "%s: ok: %d resources in %d files, scopes %q\n", dir, cfg.count(""), cfg.files, cfg.scopeNames())
	}
	if failed {
		return errSilent
	}
	return nil
}

// checkConfigDir reads a directory and commits it to a scratch store: exactly
// what a reload does, without serving it.
func checkConfigDir(dir string) (*configDir, error) {
	cfg, err := readConfigDir(dir)
	if err != nil {
		return nil, err
	}
	if _, err := store.New().Commit(cfg.changes(nil)...); err != nil {
		return nil, err
	}
	return cfg, nil
}
