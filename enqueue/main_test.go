package enqueue_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/handoff/handoff/internal/pgtest"
)

// TestMain leaves out the examples that need a database under -short, as
// pgtest skips such tests: an example cannot skip itself.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() && flag.Lookup("test.run").Value.String() == "" {
		fmt.Fprintln(os.Stderr, "enqueue: -short: running only the examples that need no database")
		if err := flag.Set("test.run", `^(Test.*|ExampleClient_Enqueue_validation)$`); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// exampleTB lets an example use pgtest, which wants a testing.TB: it panics
// where a test would fail, and runs cleanups when done is called.
type exampleTB struct {
	testing.TB // never called: the methods pgtest uses are below

	name     string
	ctx      context.Context
	cancel   context.CancelFunc
	cleanups []func()
}

func (tb *exampleTB) Helper()                      {}
func (tb *exampleTB) Name() string                 { return tb.name }
func (tb *exampleTB) Context() context.Context     { return tb.ctx }
func (tb *exampleTB) Cleanup(f func())             { tb.cleanups = append(tb.cleanups, f) }
func (tb *exampleTB) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (tb *exampleTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (tb *exampleTB) Errorf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (tb *exampleTB) Skip(args ...any)             { panic(fmt.Sprint(args...)) }

// exampleDB returns a fresh migrated database, and done to drop it.
func exampleDB(name string) (pool *pgxpool.Pool, done func()) {
	ctx, cancel := context.WithCancel(context.Background())
	tb := &exampleTB{name: name, ctx: ctx, cancel: cancel}
	pool = pgtest.NewDB(tb)
	return pool, func() {
		cancel()
		for _, f := range slices.Backward(tb.cleanups) {
			f()
		}
	}
}
