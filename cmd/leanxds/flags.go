package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// envPrefix starts the environment variable of every flag: --scope-by is also
// LEANXDS_SCOPE_BY. A flag given on the command line wins over its variable, so a
// container image can set defaults that a one-off run still overrides.
const envPrefix = "LEANXDS_"

// envName returns the environment variable that sets the flag called name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// command is one subcommand's flag set and its help text.
type command struct {
	fs *flag.FlagSet
	// synopsis is the usage line: "leanxds serve --config DIR [flags]".
	synopsis string
	// about explains what the command does, printed before the flags.
	about string
	// env makes the flags settable by LEANXDS_* variables. Only serve's are: a
	// LEANXDS_TLS_CERT meant for the server must not become dump's client
	// certificate in the same container.
	env bool
	// out receives flag errors and the usage after them; helpOut the usage
	// asked for with -h or --help (stdout: help is the command's output).
	out, helpOut io.Writer
}

func newCommand(name, synopsis, about string, out io.Writer) *command {
	fs := flag.NewFlagSet("leanxds "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	c := &command{fs: fs, synopsis: synopsis, about: about, out: out, helpOut: out}
	// parse prints the usage itself: to helpOut when asked for, to out after
	// a command-line error.
	fs.Usage = func() {}
	return c
}

// usage prints the synopsis, the text and every flag with its default and its
// environment variable, with the two dashes users type.
func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.synopsis, strings.TrimSpace(c.about))
	var flags []*flag.Flag
	c.fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	if len(flags) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFlags:\n")
	for _, f := range flags {
		arg, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintln(w, line)
		fmt.Fprintf(w, "        %s", strings.ReplaceAll(help, "\n", "\n        "))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		if c.env {
			fmt.Fprintf(w, " [$%s]", envName(f.Name))
		}
		fmt.Fprintln(w)
	}
}

// errHelp is returned by parse when the user asked for --help; the help was printed.
var errHelp = flag.ErrHelp

// errFlagParse marks a command-line error the flag package already printed,
// with the usage.
var errFlagParse = errors.New("bad flags")

// lookupEnv reads an environment variable: os.LookupEnv, or a map in tests.
type lookupEnv func(string) (string, bool)

// parse reads args, then, for a command whose flags have environment variables,
// sets every flag the command line left out from its LEANXDS_* variable, if set.
func (c *command) parse(args []string, env lookupEnv) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.helpOut)
			return err
		}
		c.usage(c.out)
		return fmt.Errorf("%w: %v", errFlagParse, err)
	}
	if !c.env {
		return nil
	}
	given := make(map[string]bool)
	c.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []string
	c.fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v, ok := env(envName(f.Name)); ok {
			if err := c.fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if len(errs) > 0 {
		return usageError{strings.Join(errs, "; ")}
	}
	return nil
}

// usageError is a mistake in the command line: exit code 2, as flag does.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// exitCode maps a command's error to the process's exit code, printing it: 0 for
// success and for --help, 2 for a bad command line, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errFlagParse):
		return 2 // flag already printed the error and the usage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "leanxds: %v\nRun 'leanxds help' for usage.\n", err)
		return 2
	case errors.Is(err, errSilent):
		return 1 // the command printed its own report
	}
	if es, ok := errors.AsType[exitStatus](err); ok {
		return es.code // the command printed its own report
	}
	fmt.Fprintf(stderr, "leanxds: %v\n", err)
	return 1
}

// errSilent is a failure the command already reported in full (validate's list
// of errors): the exit code is 1 and nothing more is printed.
var errSilent = errors.New("failed")

// exitStatus is a failure the command already reported in full, with an exit
// code of its own (apply's 3 for a lost race).
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }
