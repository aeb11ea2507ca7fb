package task_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// BenchmarkEnqueueSQL measures what SQL enqueue adds to an app's
// transaction: "domain_only" is a transaction that inserts one domain row,
// "with_enqueue" the same transaction plus handoff.enqueue, "with_enqueue_key"
// plus an idempotency key (the request hash, its lookup and a
// subtransaction). Run from GOMAXPROCS goroutines, as an app's concurrent
// requests do; compare ns/op between the three.
func BenchmarkEnqueueSQL(b *testing.B) {
	pool := pgtest.NewDB(b)
	kinds := jobs.Kinds(jobs.Deps{})
	workers, err := jobs.Workers(kinds)
	if err != nil {
		b.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers, Logger: pgtest.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	if err := task.NewService(pool, client, kinds, nil).Register(b.Context()); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(b.Context(), "CREATE TABLE orders (id bigserial PRIMARY KEY, item text NOT NULL, task_id bigint)"); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	for _, bc := range []struct {
		name string
		sql  string
	}{
		{"domain_only", `INSERT INTO orders (item) VALUES ($1)`},
		{"with_enqueue", `INSERT INTO orders (item, task_id) VALUES ($1, handoff.enqueue('noop', '{}'))`},
		{"with_enqueue_key", `INSERT INTO orders (item, task_id) VALUES ($1, handoff.enqueue('noop', '{}', idempotency_key => $1))`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					item := fmt.Sprintf("item-%d", seq.Add(1))
					err := pgx.BeginFunc(b.Context(), pool, func(tx pgx.Tx) error {
						_, err := tx.Exec(b.Context(), bc.sql, item)
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
