package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

const usage = `usage: handoff [command]   (from the source tree: go run ./cmd/server [command])

commands:
  serve                     HTTP API and River workers (the default)
  migrate up [VERSION]      apply pending migrations (up to VERSION)
  migrate down [VERSION]    roll back one migration (or down to VERSION; 0 empties the schema)
  migrate status            list migrations and whether each is applied
  migrate version           print the schema's current version
  keys create --tenant NAME [--name LABEL]
                            make an API key (printed once, alone on the last line)
  keys list                 list API keys (never the keys themselves)
  keys revoke PREFIX        revoke an API key
  config                    print the parsed configuration, secrets masked
  healthcheck               exit 0 when GET /readyz on HTTP_ADDR answers 200, else 1

configuration comes from the environment; see README.md.`

// run is the whole program; main only supplies the process's context,
// arguments, environment and output streams, so that tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	// "handoff COMMAND --help" is help, not a COMMAND to run (keys has its
	// own, per sub-command).
	if slices.Contains([]string{"serve", "migrate", "config", "healthcheck"}, cmd) && slices.ContainsFunc(args, isHelpFlag) {
		cmd = "help"
	}
	switch cmd {
	case "serve":
		if len(args) > 0 {
			return fmt.Errorf("serve takes no arguments, got %q\n%s", strings.Join(args, " "), usage)
		}
		return serve(ctx, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout)
	case "keys":
		return keys(ctx, args, getenv, stdout)
	case "config":
		if len(args) > 0 {
			return fmt.Errorf("config takes no arguments\n%s", usage)
		}
		return printConfig(getenv, stdout)
	case "healthcheck":
		if len(args) > 0 {
			return fmt.Errorf("healthcheck takes no arguments\n%s", usage)
		}
		return healthcheck(ctx, getenv, stdout)
	case "help", "-h", "-help", "--help":
		_, err := fmt.Fprintln(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

// isHelpFlag tells whether an argument after the command asks for help
// (a bare "help" there may be a value, such as a key's label).
func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}
