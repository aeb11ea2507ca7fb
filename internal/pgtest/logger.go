package pgtest

import (
	"log/slog"
	"testing"
)

// Logger returns a logger that writes to the test's output, so that what a
// component logged shows beside the test that made it log.
func Logger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
