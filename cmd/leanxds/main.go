// Command leanxds serves a directory of Envoy resources over xDS to Envoy proxies
// and proxyless gRPC clients, with an admin HTTP server (Prometheus metrics,
// connected clients, what each node is served) and CSDS.
//
//	leanxds serve --config DIR      serve a config directory (docs/config.md)
//	leanxds validate DIR...         check config directories offline
//	leanxds dump --node ID          print what a node is served, through CSDS
//	leanxds reload [--confirm]      reload a running server's directory now
//	leanxds history                 list the revisions a running server keeps
//	leanxds rollback [--to REV]     put every scope back to an earlier revision
//	leanxds rollout status|promote|abort   show or drive a staged rollout
//	leanxds apply DIR --to etcd://  write a config directory to etcd, atomically
//	leanxds fleet                   list every node of a fleet of replicas
//	leanxds version                 print the version, commit and Go version
//
// Each subcommand's --help explains its flags; serve's flags can also be set by
// LEANXDS_* environment variables.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// Registers the resource types and the extensions they carry, so that
	// protojson can print the Any fields of what dump and the debug pages show.
	_ "github.com/leanxds/leanxds/resources"
)

const mainUsage = `leanxds is an xDS control plane for Envoy proxies and proxyless gRPC clients.

Usage:
  leanxds serve --config DIR [flags]   serve a config directory over xDS
  leanxds validate DIR...              check config directories offline
  leanxds dump [--node ID] [flags]     print what a node is served (CSDS)
  leanxds reload [--confirm]           reload a running server's config directory now
  leanxds history                      list the revisions a running server keeps of each scope
  leanxds rollback [--to REV] [--yes]  put every scope back to an earlier revision, for every node
  leanxds rollout status|promote|abort show or drive a running server's staged rollout (serve --rollout)
  leanxds apply DIR --to etcd://H:P/PREFIX   write a config directory to etcd (docs/etcd.md)
  leanxds fleet [flags]                list every node of a fleet of replicas (/debug/fleet)
  leanxds version                      print the version, commit and Go version (also --version)
  leanxds help [COMMAND]               explain a command and its flags

Try it:
  go run ./cmd/leanxds serve --config examples/edge
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// commands maps each subcommand to its function.
var commands = map[string]func(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error{
	"serve":    runServe,
	"validate": runValidate,
	"dump":     runDump,
	"reload":   runReload,
	"history":  runHistory,
	"rollback": runRollback,
	"rollout":  runRollout,
	"apply":    runApply,
	"fleet":    runFleet,
	"version":  runVersion,
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-version", "--version":
		name = "version"
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if commands[rest[0]] == nil {
				fmt.Fprintf(stderr, "leanxds help: unknown command %q\n\n%s", rest[0], mainUsage)
				return 2
			}
			return exitCode(commands[rest[0]](ctx, []string{"--help"}, env, stdout, stderr), stderr)
		}
		fmt.Fprint(stdout, mainUsage)
		return 0
	}
	cmd := commands[name]
	if cmd == nil {
		fmt.Fprintf(stderr, "leanxds: unknown command %q\n\n%s", name, mainUsage)
		return 2
	}
	return exitCode(cmd(ctx, rest, env, stdout, stderr), stderr)
}
