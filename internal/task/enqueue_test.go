package task_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// setupRegistered is setup with the kinds and queues recorded, as the
// server does at start-up, so that handoff.enqueue accepts them.
func setupRegistered(t *testing.T, work bool) *testBundle {
	t.Helper()
	bundle := setup(t, work)
	require.NoError(t, bundle.svc.Register(t.Context()))
	return bundle
}

func requirePgError(t *testing.T, err error, code, column string) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, code, pgErr.Code, "SQLSTATE of %q", pgErr.Message)
	if column != "" {
		require.Equal(t, column, pgErr.ColumnName, "COLUMN of %q", pgErr.Message)
	}
	return pgErr
}

func TestEnqueueSQL(t *testing.T) {
	t.Parallel()

	t.Run("IntegersStoredAsTheWorkerDecodesThem", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, true)
		check := jobs.CheckArgs(jobs.Kinds(jobs.Deps{}))

		// 1.0 and 1e0 are integers to the check, as to the API; the job
		// stores 1, which the worker decodes (an int refuses 1.0).
		var ids []int64
		for _, count := range []string{"1.0", "1e0", "1.000"} {
			var id int64
			require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', $1::jsonb, idempotency_key => 'int-' || $2)`,
				`{"seconds": 0.01, "fail_times": `+count+`}`, count).Scan(&id))
			var stored []byte
			var failTimes string
			require.NoError(t, bundle.pool.QueryRow(ctx, "SELECT args, args ->> 'fail_times' FROM river_job WHERE id = $1", id).Scan(&stored, &failTimes))
			require.Equal(t, "1", failTimes, "stored as an integer, not as written: %s", count)
			require.JSONEq(t, `{"seconds": 0.01, "fail_times": 1}`, string(stored), count)
			require.NoError(t, check("sleep", stored), count)
			ids = append(ids, id)

			// The request hashes as written with an integer: the same key
			// and 1 is the same request, as through the API.
			var again int64
			require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 0.01, "fail_times": 1}', idempotency_key => 'int-' || $1)`, count).Scan(&again))
			require.Equal(t, id, again, count)
		}
		for _, id := range ids {
			require.Eventually(t, func() bool {
				got, err := bundle.svc.Get(ctx, id)
				require.NoError(t, err)
				return got.State == "completed"
			}, 30*time.Second, 10*time.Millisecond, "the worker runs it: one failure, then done")
			got, err := bundle.svc.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, 2, got.Attempt)
		}
	})

	t.Run("ArgsStoredAsTheAPIStoresThem", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, false)

		// Numbers without the zeros that change nothing, as Go writes a
		// float64; a typed field given null left out. Each is one request
		// with the args written as the API writes them.
		for _, c := range []struct{ given, stored string }{
			{`{"seconds": 1.50}`, `{"seconds": 1.5}`},
			{`{"seconds": 1e2}`, `{"seconds": 100}`},
			{`{"seconds": 2.0, "fail_times": 3.0}`, `{"seconds": 2, "fail_times": 3}`},
			{`{"seconds": 0.25, "fail_times": null}`, `{"seconds": 0.25}`},
		} {
			var id int64
			require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', $1::jsonb, idempotency_key => $2::text)`, c.given, c.given).Scan(&id))
			var stored string
			require.NoError(t, bundle.pool.QueryRow(ctx, "SELECT args::text FROM river_job WHERE id = $1", id).Scan(&stored))
			var want string
			require.NoError(t, bundle.pool.QueryRow(ctx, "SELECT $1::jsonb::text", c.stored).Scan(&want))
			require.Equal(t, want, stored, "the text jsonb keeps, not only the value: %s", c.given)

			var again int64
			require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', $1::jsonb, idempotency_key => $2::text)`, c.stored, c.given).Scan(&again))
			require.Equal(t, id, again, "written either way, one request: %s", c.given)
		}

		// Through the API (task.Service) and SQL, 1.0 and 1 are one request.
		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1.0}`), IdempotencyKey: "both-paths"})
		require.NoError(t, err)
		var viaSQL int64
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 1.0}', idempotency_key => 'both-paths')`).Scan(&viaSQL))
		require.Equal(t, created.ID, viaSQL)
	})

	t.Run("RollbackLeavesNoTaskNoJob", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, false)

		tx, err := bundle.pool.Begin(ctx)
		require.NoError(t, err)
		var id int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 0.01}', idempotency_key => 'r1')`).Scan(&id))
		require.Positive(t, id)
		var inTx int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE id = $1", id).Scan(&inTx))
		require.Equal(t, 1, inTx, "the caller's transaction sees its task")
		require.NoError(t, tx.Rollback(ctx))

		tasks, jobRows := countRows(t, bundle.pool)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})

	t.Run("CommitLeavesBothAndWorkerRunsIt", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, true)
		_, err := bundle.pool.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, task_id bigint NOT NULL)")
		require.NoError(t, err)

		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 0.01}', max_attempts => 3, priority => 2)`).Scan(&id); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO orders VALUES (1, $1)", id)
			return err
		}))

		done := waitForState(t, bundle.svc, id, "completed")
		require.Equal(t, "sleep", done.Kind)
		require.Equal(t, 2, done.Priority)
		require.Equal(t, 3, done.MaxAttempts)
		require.JSONEq(t, `{"seconds": 0.01}`, string(done.Args))
		var result jobs.SleepResult
		require.NoError(t, json.Unmarshal(done.Result, &result))
		require.Equal(t, 1, result.Attempt)
	})

	t.Run("RunAtAheadIsScheduled", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, false)

		runAt := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		var id int64
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', run_at => $1)`, runAt).Scan(&id))
		got, err := bundle.svc.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "scheduled", got.State)
		require.True(t, runAt.Equal(got.ScheduledAt), "scheduled_at %s, want %s", got.ScheduledAt, runAt)

		// A run_at already past means now, as over HTTP.
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', run_at => now() - interval '1 minute')`).Scan(&id))
		got, err = bundle.svc.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "available", got.State)
	})

	t.Run("BadRequestRaisesInCallersTransaction", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, false)
		_, err := bundle.pool.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY)")
		require.NoError(t, err)

		for _, tc := range []struct {
			call, column, message string
		}{
			{`handoff.enqueue('nope', '{}')`, "kind", `unknown kind "nope"; known kinds: http, noop, sleep`},
			{`handoff.enqueue('sleep', '{"seconds": 1, "secs": 2}')`, "args.secs", `args.secs is not a field of kind sleep; its fields: fail_times, seconds`},
			{`handoff.enqueue('sleep', '{"seconds": "1"}')`, "args.seconds", "must be a JSON number, not string"},
			{`handoff.enqueue('sleep', '{"seconds": 1, "fail_times": 1.5}')`, "args.fail_times", "must be an integer"},
			{`handoff.enqueue('sleep', '{"seconds": 7200}')`, "args.seconds", "args.seconds must be between 0 and 3600"},
			{`handoff.enqueue('sleep', '{"fail_times": 1}')`, "args.seconds", "args.seconds is required"},
			{`handoff.enqueue('noop', '[]')`, "args", "must be a JSON object"},
			{`handoff.enqueue('noop', '{}', queue => 'nope')`, "queue", `unknown queue "nope"`},
			{`handoff.enqueue('noop', '{}', priority => 0)`, "priority", "between 1 (highest) and 4"},
			{`handoff.enqueue('noop', '{}', max_attempts => 1001)`, "max_attempts", "between 1 and 1000"},
			{`handoff.enqueue('noop', '{}', run_at => now() + interval '11 years')`, "run_at", "within 10 years"},
			{`handoff.enqueue('noop', '{}', idempotency_key => ' ')`, "idempotency_key", "whitespace"},
			{`handoff.enqueue('noop', '{}', callback_url => 'ftp://example.com/')`, "callback_url", "http or https"},
		} {
			tx, err := bundle.pool.Begin(ctx)
			require.NoError(t, err)
			// A failed check must not leave the connection checked out, or
			// the pool's cleanup waits for it forever.
			t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
			_, err = tx.Exec(ctx, "INSERT INTO orders VALUES (1)")
			require.NoError(t, err)
			_, err = tx.Exec(ctx, "SELECT "+tc.call)
			pgErr := requirePgError(t, err, "22023", tc.column)
			require.Contains(t, pgErr.Message, tc.message, tc.call)
			// The app's transaction failed: its own row goes too.
			_, err = tx.Exec(ctx, "SELECT 1")
			_ = requirePgError(t, err, "25P02", "")
			require.NoError(t, tx.Rollback(ctx))
		}
		var orders int
		require.NoError(t, bundle.pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&orders))
		require.Zero(t, orders)
		tasks, jobRows := countRows(t, bundle.pool)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})

	t.Run("ConcurrentIdempotentCallsMakeOneTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, false)

		const n = 20
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			ids   = make([]int64, n)
			errs  = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 1}', idempotency_key => 'same')`).Scan(&ids[i])
				})
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, ids[0], ids[i])
		}
		tasks, jobRows := countRows(t, bundle.pool)
		require.Equal(t, 1, tasks)
		require.Equal(t, 1, jobRows)
	})

	t.Run("KeyReusedWithOtherRequestRaises", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, false)

		var id, again int64
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 1}', idempotency_key => 'k')`).Scan(&id))
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 1}', idempotency_key => 'k', queue => 'default', priority => 1)`).Scan(&again))
		require.Equal(t, id, again, "defaults spelled out are the same request")

		_, err := bundle.pool.Exec(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 2}', idempotency_key => 'k')`)
		pgErr := requirePgError(t, err, "23505", "")
		require.Equal(t, "tasks_idempotency_key_idx", pgErr.ConstraintName)
		require.Equal(t, fmt.Sprintf("held by task %d", id), pgErr.Detail)

		// Keys are per tenant.
		var other int64
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 2}', idempotency_key => 'k', tenant => 'acme')`).Scan(&other))
		require.NotEqual(t, id, other)
		tasks, _ := countRows(t, bundle.pool)
		require.Equal(t, 2, tasks)
	})
}

// TestEnqueueTx is the Go path of the Go package enqueue: Validator.Prepare,
// then handoff.enqueue in the caller's transaction.
func TestEnqueueTx(t *testing.T) {
	t.Parallel()

	t.Run("ErrorsAreTyped", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupRegistered(t, false)
		v := task.NewValidator(jobs.Kinds(jobs.Deps{}), nil, nil)

		p, err := v.Prepare(task.CreateRequest{Kind: "noop", IdempotencyKey: "k"})
		require.NoError(t, err)
		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			id, err = task.EnqueueTx(ctx, tx, p)
			return err
		}))

		p, err = v.Prepare(task.CreateRequest{Kind: "noop", IdempotencyKey: "k", Priority: 3})
		require.NoError(t, err)
		err = pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			_, err := task.EnqueueTx(ctx, tx, p)
			return err
		})
		var conflict *task.IdempotencyConflictError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, id, conflict.TaskID)
		require.ErrorIs(t, err, task.ErrIdempotencyConflict)

		// A queue the Go side cannot check (no queue list) is refused by the
		// database, as a *ValidationError.
		p, err = v.Prepare(task.CreateRequest{Kind: "noop", Queue: "elsewhere"})
		require.NoError(t, err)
		err = pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			_, err := task.EnqueueTx(ctx, tx, p)
			return err
		})
		var validation *task.ValidationError
		require.ErrorAs(t, err, &validation)
		require.Contains(t, validation.Fields["queue"], `unknown queue "elsewhere"`)
	})
}

// TestRulesAgree feeds the same requests to the Go rules (Validator.Prepare,
// behind HTTP and Go) and the SQL rules (handoff.check_request, behind
// handoff.enqueue): both must accept, or both refuse the same field. SQL
// knows a kind's args from its shape (types from the Go fields, required
// and bounds from their handoff tags); a rule only a kind's Validate can
// check would be marked goOnly.
func TestRulesAgree(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setupRegistered(t, false)
	validator := task.NewValidator(jobs.Kinds(jobs.Deps{}), []string{task.DefaultQueue}, nil)

	past := time.Now().Add(-time.Hour)
	farFuture := time.Now().AddDate(11, 0, 0)
	// Go has a year 0 and Postgres none: pgx sends it as 1 BC, which SQL
	// takes, but the API's request hash reads it back from text (goOnly).
	yearZero := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	soon := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		req    task.CreateRequest
		field  string // "" means valid
		goOnly bool
	}{
		{"Noop", task.CreateRequest{Kind: "noop"}, "", false},
		{"Sleep", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1.5, "fail_times": 2}`)}, "", false},
		{"AllOptions", task.CreateRequest{Kind: "noop", Queue: "default", Priority: 4, MaxAttempts: 1000, RunAt: &soon, IdempotencyKey: strings.Repeat("k", 255), CallbackURL: "https://example.com/hook?order=1#x", Tenant: "acme"}, "", false},
		{"RunAtPast", task.CreateRequest{Kind: "noop", RunAt: &past}, "", false},
		{"CallbackHTTPPort", task.CreateRequest{Kind: "noop", CallbackURL: "HTTP://127.0.0.1:8000"}, "", false},
		{"NullArgField", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1, "fail_times": null}`)}, "", false},
		{"KindMissing", task.CreateRequest{}, "kind", false},
		{"KindUnknown", task.CreateRequest{Kind: "nope"}, "kind", false},
		{"ArgsArray", task.CreateRequest{Kind: "noop", Args: json.RawMessage(`[]`)}, "args", false},
		{"ArgsString", task.CreateRequest{Kind: "noop", Args: json.RawMessage(`"x"`)}, "args", false},
		{"ArgsUnknownField", task.CreateRequest{Kind: "noop", Args: json.RawMessage(`{"x": 1}`)}, "args", false},
		{"ArgsWrongType", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": "1"}`)}, "args", false},
		{"ArgsFractionForInteger", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1, "fail_times": 1.5}`)}, "args", false},
		{"ArgsBoolForNumber", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": true}`)}, "args", false},
		{"ArgsAboveMax", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 7200}`)}, "args", false},
		{"ArgsBelowMin", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1, "fail_times": -1}`)}, "args", false},
		{"ArgsAtBounds", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 3600, "fail_times": 100}`)}, "", false},
		{"ArgsBelowFloat", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1e-400}`)}, "", false},
		{"ArgsAtLowerBounds", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 0, "fail_times": 0}`)}, "", false},
		{"ArgsMissingRequired", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{}`)}, "args", false},
		{"ArgsRequiredNull", task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": null}`)}, "args", false},
		{"QueueUnknown", task.CreateRequest{Kind: "noop", Queue: "nope"}, "queue", false},
		{"PriorityHigh", task.CreateRequest{Kind: "noop", Priority: 5}, "priority", false},
		{"PriorityNegative", task.CreateRequest{Kind: "noop", Priority: -1}, "priority", false},
		{"MaxAttemptsHigh", task.CreateRequest{Kind: "noop", MaxAttempts: 1001}, "max_attempts", false},
		{"MaxAttemptsNegative", task.CreateRequest{Kind: "noop", MaxAttempts: -1}, "max_attempts", false},
		{"RunAtTooFar", task.CreateRequest{Kind: "noop", RunAt: &farFuture}, "run_at", false},
		{"KeyTooLong", task.CreateRequest{Kind: "noop", IdempotencyKey: strings.Repeat("k", 256)}, "idempotency_key", false},
		{"KeyMultibyteTooLong", task.CreateRequest{Kind: "noop", IdempotencyKey: strings.Repeat("é", 128)}, "idempotency_key", false},
		{"KeyWhitespace", task.CreateRequest{Kind: "noop", IdempotencyKey: " \t "}, "idempotency_key", false},
		{"CallbackFTP", task.CreateRequest{Kind: "noop", CallbackURL: "ftp://example.com/"}, "callback_url", false},
		{"CallbackRelative", task.CreateRequest{Kind: "noop", CallbackURL: "/hook"}, "callback_url", false},
		{"CallbackNoHost", task.CreateRequest{Kind: "noop", CallbackURL: "https://"}, "callback_url", false},
		{"CallbackCredentials", task.CreateRequest{Kind: "noop", CallbackURL: "https://user:pw@example.com/"}, "callback_url", false}, //nolint:gosec // credentials in a URL are the case under test

		{"CallbackSpace", task.CreateRequest{Kind: "noop", CallbackURL: "https://example.com/a b"}, "callback_url", false},
		// URLs the old expression took and the callback could never be
		// sent to (migration 00023), and their sendable neighbours.
		{"CallbackOpenBracket", task.CreateRequest{Kind: "noop", CallbackURL: "http://[::1"}, "callback_url", false},
		{"CallbackPortTooHigh", task.CreateRequest{Kind: "noop", CallbackURL: "http://example.com:99999/"}, "callback_url", false},
		{"CallbackPortZero", task.CreateRequest{Kind: "noop", CallbackURL: "http://example.com:0/"}, "callback_url", false},
		{"CallbackPortOnly", task.CreateRequest{Kind: "noop", CallbackURL: "http://:80/"}, "callback_url", false},
		{"CallbackHostEscape", task.CreateRequest{Kind: "noop", CallbackURL: "http://%zz/"}, "callback_url", false},
		{"CallbackPathBadEscape", task.CreateRequest{Kind: "noop", CallbackURL: "https://example.com/a%zzb"}, "callback_url", false},
		{"CallbackIPv6", task.CreateRequest{Kind: "noop", CallbackURL: "http://[2001:db8::1]:8080/hook"}, "callback_url", false},
		{"CallbackBracketedNumber", task.CreateRequest{Kind: "noop", CallbackURL: "http://[1]/"}, "callback_url", false},
		{"CallbackNEL", task.CreateRequest{Kind: "noop", CallbackURL: "https://example.com/a\u0085b"}, "", false},
		// IDNA maps a soft hyphen to nothing: Go refuses the host, which SQL
		// cannot tell (goOnly: a callback made from SQL so is discarded).
		{"CallbackHostMapsToNothing", task.CreateRequest{Kind: "noop", CallbackURL: "http://\u00ad:5077/cb"}, "callback_url", true},
		{"CallbackIdeographicSpace", task.CreateRequest{Kind: "noop", CallbackURL: "https://example.com/a\u3000b"}, "", false},
		{"CallbackPortMax", task.CreateRequest{Kind: "noop", CallbackURL: "https://example.com:65535/"}, "", false},
		{"CallbackEmptyPort", task.CreateRequest{Kind: "noop", CallbackURL: "https://example.com:/"}, "", false},
		{"CallbackNonASCIIHost", task.CreateRequest{Kind: "noop", CallbackURL: "https://bücher.example/hook?q=ä%20b"}, "", false},
		{"RunAtYearZero", task.CreateRequest{Kind: "noop", RunAt: &yearZero}, "run_at", true},
		{"CallbackTooLong", task.CreateRequest{Kind: "noop", CallbackURL: "https://example.com/" + strings.Repeat("a", 2048)}, "callback_url", false},
		{"TenantWhitespace", task.CreateRequest{Kind: "noop", Tenant: "  "}, "tenant", false},
		{"TenantTooLong", task.CreateRequest{Kind: "noop", Tenant: strings.Repeat("t", 256)}, "tenant", false},
		{"TenantUpper", task.CreateRequest{Kind: "noop", Tenant: "ACME"}, "tenant", false},
		{"TenantSpace", task.CreateRequest{Kind: "noop", Tenant: "acme corp"}, "tenant", false},
		{"TenantLongest", task.CreateRequest{Kind: "noop", Tenant: strings.Repeat("t", 63)}, "", false},
		{"Tenant64", task.CreateRequest{Kind: "noop", Tenant: strings.Repeat("t", 64)}, "tenant", false},
		// A field a JSON body gave with its zero value (Given) is refused,
		// as SQL refuses it; left out, it means the default on both paths.
		{"QueueGivenEmpty", task.CreateRequest{Kind: "noop", Given: jsonstrict.Given{"queue"}}, "queue", false},
		{"PriorityGivenZero", task.CreateRequest{Kind: "noop", Given: jsonstrict.Given{"priority"}}, "priority", false},
		{"MaxAttemptsGivenZero", task.CreateRequest{Kind: "noop", Given: jsonstrict.Given{"max_attempts"}}, "max_attempts", false},
		{"KeyGivenEmpty", task.CreateRequest{Kind: "noop", Given: jsonstrict.Given{"idempotency_key"}}, "idempotency_key", false},
		{"CallbackGivenEmpty", task.CreateRequest{Kind: "noop", Given: jsonstrict.Given{"callback_url"}}, "callback_url", false},
	} {
		goField := ""
		_, err := validator.Prepare(tc.req)
		if err != nil {
			var validation *task.ValidationError
			require.ErrorAs(t, err, &validation, tc.name)
			require.Len(t, validation.Fields, 1, "%s: %v", tc.name, validation.Fields)
			for field := range validation.Fields {
				goField = rootField(field)
			}
		}
		require.Equal(t, tc.field, goField, "%s: Go rules", tc.name)

		sqlField := ""
		err = pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			// A zero value is SQL's NULL (not given), unless the body gave it.
			given := func(name string, v any, null any) any {
				if tc.req.Given.Has(name) {
					return v
				}
				return null
			}
			_, err := tx.Exec(ctx, `SELECT handoff.check_request($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				tc.req.Kind, sqlArgs(tc.req.Args), given("queue", tc.req.Queue, nullIfZero(tc.req.Queue)),
				given("priority", tc.req.Priority, nullIfZero(tc.req.Priority)),
				given("max_attempts", tc.req.MaxAttempts, nullIfZero(tc.req.MaxAttempts)), tc.req.RunAt,
				given("idempotency_key", tc.req.IdempotencyKey, nullIfZero(tc.req.IdempotencyKey)),
				given("callback_url", tc.req.CallbackURL, nullIfZero(tc.req.CallbackURL)), nullIfZero(tc.req.Tenant))
			return err
		})
		if err != nil {
			pgErr := requirePgError(t, err, "22023", "")
			sqlField = rootField(pgErr.ColumnName)
		}
		if tc.goOnly {
			require.Empty(t, sqlField, "%s: SQL rules (Go only)", tc.name)
			continue
		}
		require.Equal(t, tc.field, sqlField, "%s: SQL rules", tc.name)
	}
}

// TestCheckRequestInfinity: SQL refuses a run_at that is not a finite time
// (migration 00023), which Go cannot express: '-infinity' was stored as it
// was, and with a key failed with 0A000 in handoff.request_hash.
func TestCheckRequestInfinity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setupRegistered(t, false)
	for _, runAt := range []string{"-infinity", "infinity"} {
		for _, key := range []any{nil, "k"} {
			err := pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT handoff.enqueue('noop', '{}', run_at => $1::timestamptz, idempotency_key => $2)`, runAt, key)
				return err
			})
			_ = requirePgError(t, err, "22023", "run_at")
		}
	}
}

// TestArgsNUL: args holding U+0000, which jsonb cannot store, are refused
// with the field named (they were a 422 naming none, from Postgres's
// 22P05); an escaped backslash before "u0000" is not that character.
func TestArgsNUL(t *testing.T) {
	t.Parallel()
	validator := task.NewValidator(jobs.Kinds(jobs.Deps{}), []string{task.DefaultQueue}, nil)
	for raw, refused := range map[string]bool{
		`{"url": "https://example.com/", "body": "a\u0000b"}`:  true,
		`{"url": "https://example.com/", "body": "\\\u0000"}`:  true,
		`{"url": "https://example.com/", "body": "a\\u0000b"}`: false,
		`{"url": "https://example.com/", "body": "\\\\u0000"}`: false,
		`{"url": "https://example.com/", "body": "u0000"}`:     false,
	} {
		_, err := validator.Prepare(task.CreateRequest{Kind: "http", Args: json.RawMessage(raw)})
		if !refused {
			require.NoError(t, err, raw)
			continue
		}
		var validation *task.ValidationError
		require.ErrorAs(t, err, &validation, raw)
		require.Contains(t, validation.Fields["args"], "U+0000", raw)
	}
}

// TestCallbackURLPatternSendable: every callback_url the shared expression
// takes is one the http kind can send to (jobs.CheckHTTPURL), so a task
// accepted with it never has its callback discarded as "not a valid URL",
// except a non-ASCII host name that IDNA refuses, which only Go can tell.
func TestCallbackURLPatternSendable(t *testing.T) {
	t.Parallel()
	pattern := regexp.MustCompile(task.CallbackURLPattern)
	var urls []string
	for _, scheme := range []string{"http://", "HTTPS://", "ftp://"} {
		for _, host := range callbackHosts {
			for _, port := range callbackPorts {
				for _, rest := range callbackRests {
					urls = append(urls, scheme+host+port+rest)
				}
			}
		}
	}
	for _, raw := range urls {
		if !pattern.MatchString(raw) {
			continue
		}
		// The one check the pattern cannot make: a non-ASCII host name that
		// IDNA refuses or maps to nothing. The API refuses it
		// (jobs.CheckHTTPURL); SQL cannot (docs: a gap).
		if why := jobs.CheckHTTPURL(raw); why != "" {
			require.Equal(t, "has a host name that is not a valid international domain name", why, "%q matches the pattern", raw)
		}
	}
	require.True(t, pattern.MatchString("https://example.com:8443/hook?order=1#x"), "the pattern takes ordinary URLs")

	// Postgres reads the expression as Go does (migration 00023 uses it).
	bundle := setup(t, false)
	var sqlMatches []bool
	require.NoError(t, bundle.pool.QueryRow(t.Context(), `SELECT array_agg(u ~ $2 ORDER BY i) FROM unnest($1::text[]) WITH ORDINALITY AS t(u, i)`,
		urls, task.CallbackURLPattern).Scan(&sqlMatches))
	require.Len(t, sqlMatches, len(urls))
	for i, raw := range urls {
		require.Equal(t, pattern.MatchString(raw), sqlMatches[i], "%q: Go and Postgres disagree", raw)
	}
}

// The parts TestCallbackURLPatternSendable combines: ordinary ones, and
// the ones an engine or a URL parser could read differently.
var (
	callbackHosts = []string{"example.com", "a", "127.0.0.1", "[::1]", "[2001:db8::1]", "[1]", "[:]", "[1.2.3.4]", "bücher.example", "x_y~z!$&'()*+,;=.example", "[::1", "::1]", "%41", "a%", "", "@", "a b", "[zz]", "a\u0085b", "a\u3000b"}
	callbackPorts = []string{"", ":", ":1", ":80", ":65535", ":65536", ":0", ":080", ":x", "::"}
	callbackRests = []string{"", "/", "/a?b=c#d", "?q", "#f", "/%20", "/%2", "/%zz", "/a b", "/\x01", "/\x7f", "/é", "//x", "/[x]", "/a\u0085b", "/a\u00a0b", "/a\u2028b", "/a\u3000b", "/a\tb"}
)

// rootField is a field's top-level name: Go keys an args problem "args" or
// "args.x" depending on the decoder's error, SQL always "args.x".
func rootField(field string) string {
	root, _, _ := strings.Cut(field, ".")
	return root
}

func sqlArgs(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	return string(raw)
}

func nullIfZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// TestResendAfterRunAt is issue 8's resend bug: the request hash covers
// run_at as sent, so a resend after run_at has passed is the same request.
func TestResendAfterRunAt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Now()
	var mu sync.Mutex
	nowFunc := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	bundle := setup(t, false)
	svc := task.NewService(bundle.pool, bundle.client, jobs.Kinds(jobs.Deps{}), &task.ServiceOpts{NowFunc: nowFunc})

	runAt := now.Add(10 * time.Second)
	req := task.CreateRequest{Kind: "noop", RunAt: &runAt, IdempotencyKey: "resend"}
	first, created, err := svc.Create(ctx, req)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, "scheduled", first.State)

	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	again, created, err := svc.Create(ctx, req)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, again.ID)

	other := runAt.Add(time.Second)
	_, _, err = svc.Create(ctx, task.CreateRequest{Kind: "noop", RunAt: &other, IdempotencyKey: "resend"})
	var conflict *task.IdempotencyConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, first.ID, conflict.TaskID)
}

func TestShapeOf(t *testing.T) {
	t.Parallel()

	type embedded struct {
		Inner string `json:"inner"`
	}
	type args struct {
		embedded

		Count   int             `json:"count" handoff:"required,min=1,max=10"`
		Ratio   *float64        `json:"ratio,omitempty" handoff:"min=-0.5"`
		Name    string          `json:"name"`
		On      bool            `json:"on"`
		Tags    []string        `json:"tags"`
		Extra   map[string]any  `json:"extra"`
		Raw     json.RawMessage `json:"raw"`
		At      time.Time       `json:"at"`
		Skipped string          `json:"-"`
		Plain   string
		hidden  string
	}
	_ = args{}.hidden
	shape, err := task.ShapeOf(reflect.TypeFor[args]())
	require.NoError(t, err)
	one, ten, half := 1.0, 10.0, -0.5
	require.Equal(t, map[string]task.FieldShape{
		"inner": {Type: "string"}, "count": {Type: "integer", Required: true, Min: &one, Max: &ten},
		"ratio": {Type: "number", Min: &half}, "name": {Type: "string"}, "on": {Type: "boolean"},
		"tags": {Type: "array"}, "extra": {Type: "object"}, "raw": {Type: "any"}, "at": {Type: "any"},
		"Plain": {Type: "string"},
	}, shape.Fields)

	type badArgs struct {
		N int `json:"n" handoff:"maximum=3"`
	}
	_, err = task.ShapeOf(reflect.TypeFor[badArgs]())
	require.ErrorContains(t, err, `unknown handoff tag rule "maximum=3"`)
}
