package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/leanxds/leanxds/admin"
)

const versionAbout = `
Print the leanxds version, the commit it was built from ("+dirty" when the working
copy had changes, "unknown" when the build did not record it) and the Go version
that built it: the labels of the leanxds_build_info metric.`

// runVersion is `leanxds version` (and `leanxds --version`).
func runVersion(_ context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	c := newCommand("version", "leanxds version", versionAbout, stderr)
	c.helpOut = stdout
	if err := c.parse(args, env); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageErrorf("version: unexpected argument %q", c.fs.Arg(0))
	}
	printVersion(stdout, admin.ReadBuildInfo())
	return nil
}

func printVersion(w io.Writer, info admin.BuildInfo) {
	fmt.Fprintf(w, "leanxds %s\ncommit: %s\ngo: %s %s/%s\n", info.Version, info.Commit, info.GoVersion, runtime.GOOS, runtime.GOARCH)
}
