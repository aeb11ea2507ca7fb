// Command server is Handoff: the HTTP API and the River workers in one
// process (`serve`, the default), and the schema migrations (`migrate`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts a graceful stop, a SIGINT kills the
	// process at once, as an operator pressing Ctrl-C twice expects. A
	// SIGTERM does not: a supervisor sends SIGTERM once and SIGKILL when it
	// has waited enough, and a wrapper may pass on the signal its process
	// group got too (make does, for `make run`), so that one `kill -TERM`
	// arrives twice. The handler stays installed: a process started in the
	// background by a shell inherits SIGINT ignored, and stopping the first
	// handler would restore that, so a second Ctrl-C or kill -INT did nothing.
	context.AfterFunc(ctx, func() {
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		stop()
		for sig := range again {
			if sig == os.Interrupt {
				fmt.Fprintln(os.Stderr, "handoff: second interrupt, exiting at once")
				os.Exit(1)
			}
			fmt.Fprintln(os.Stderr, "handoff: already stopping gracefully (SHUTDOWN_TIMEOUT); interrupt (Ctrl-C) or SIGKILL to exit at once:", sig)
		}
	})
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff:", err)
		os.Exit(1)
	}
}
