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
	// After the first signal starts a graceful stop, a second one kills the
	// process at once, as an operator pressing Ctrl-C twice expects. The
	// handler stays installed for that: a process started in the background
	// by a shell inherits SIGINT ignored, and stopping the first handler
	// would restore that, so a second Ctrl-C or kill -INT did nothing.
	context.AfterFunc(ctx, func() {
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		stop()
		sig := <-again
		fmt.Fprintln(os.Stderr, "handoff: second signal, exiting at once:", sig)
		os.Exit(1)
	})
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff:", err)
		os.Exit(1)
	}
}
