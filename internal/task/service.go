package task

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/store"
	"github.com/handoff/handoff/jobs"
)

// JobClient is the part of River's client that the service uses. Its methods
// take the service's transaction, so a job changes together with its task.
type JobClient interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobCancelTx(ctx context.Context, tx pgx.Tx, jobID int64) (*rivertype.JobRow, error)
	JobRetryTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error)
}

// Service accepts, reads and controls tasks.
type Service struct {
	pool      *pgxpool.Pool
	jobs      JobClient
	kinds     []jobs.Kind
	queues    []string
	validator *Validator
	queries   *store.Queries
	logger    *slog.Logger
	// maxUnfinished caps each tenant's unfinished tasks; 0: no cap.
	maxUnfinished int
	// rooms spares most creates the count of unfinished tasks (room.go);
	// unfinishedCounts is how many counts were made, for tests.
	rooms            *roomCache
	unfinishedCounts atomic.Int64
	// group coalesces concurrent inserts (batch.go).
	group *grouper
}

// ServiceOpts are optional settings for NewService; nil means defaults.
type ServiceOpts struct {
	// Queues are the queues tasks may name. A task in a queue no worker
	// serves would wait forever, so other names are rejected.
	// Defaults to River's default queue only.
	Queues []string

	// NowFunc returns the current time, for validating run_at. Defaults to
	// time.Now.
	NowFunc func() time.Time

	// Logger receives what the service notices but its callers need not
	// act on. Defaults to discarding.
	Logger *slog.Logger

	// MaxUnfinished caps the tasks of one tenant that have not finished
	// (available, scheduled, pending, running or retryable): Create
	// refuses more with a *LimitError. The count runs before the insert,
	// so requests racing each other may pass it by a few. Defaults to 0,
	// no cap.
	MaxUnfinished int

	// MaxArgsBytes is the largest args Create accepts (422 beyond).
	// Defaults to MaxArgsBytes, which is also its ceiling.
	MaxArgsBytes int

	// BatchMax is the most concurrent Create calls that share one INSERT
	// statement and commit (group commit, batch.go). Defaults to
	// DefaultBatchMax; 1 turns group commit off.
	BatchMax int
}

// unfinishedRetryAfter is the wait suggested to a tenant at its cap: tasks
// finish in seconds or are scheduled, so a short wait, then the client
// learns again.
const unfinishedRetryAfter = 5 * time.Second

// NewService returns a Service that writes through pool and inserts jobs
// with client, accepting the given kinds.
func NewService(pool *pgxpool.Pool, client JobClient, kinds []jobs.Kind, opts *ServiceOpts) *Service {
	if opts == nil {
		opts = &ServiceOpts{}
	}
	queues := opts.Queues
	if len(queues) == 0 {
		queues = []string{DefaultQueue}
	}
	validator := NewValidator(kinds, queues, opts.NowFunc)
	if opts.MaxArgsBytes > 0 {
		validator.maxArgs = min(opts.MaxArgsBytes, MaxArgsBytes)
	}
	return &Service{
		pool:      pool,
		jobs:      client,
		kinds:     kinds,
		queues:    queues,
		validator: validator,
		queries:   store.New(),
		logger:    cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),

		maxUnfinished: max(opts.MaxUnfinished, 0),
		rooms:         newRoomCache(opts.MaxUnfinished),
		group:         newGrouper(client, opts.BatchMax),
	}
}

// Register records the service's kinds, with the shape of their args, and
// its queues in handoff.kinds and handoff.queues, where handoff.enqueue
// checks a request from SQL. The server calls it at start-up; it only adds
// and updates, so servers with other kinds may share the database.
func (s *Service) Register(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, k := range s.kinds {
			argsShape, err := ShapeOf(k.ArgsType)
			if err != nil {
				return fmt.Errorf("shape of kind %q: %w", k.Name, err)
			}
			shape, err := json.Marshal(argsShape)
			if err != nil {
				return fmt.Errorf("encode shape of kind %q: %w", k.Name, err)
			}
			if err := s.queries.KindUpsert(ctx, tx, store.KindUpsertParams{Kind: k.Name, Shape: shape}); err != nil {
				return fmt.Errorf("record kind %q: %w", k.Name, err)
			}
		}
		for _, q := range s.queues {
			if err := s.queries.QueueUpsert(ctx, tx, q); err != nil {
				return fmt.Errorf("record queue %q: %w", q, err)
			}
		}
		return nil
	})
}

// Validate checks req as Create does, without writing anything: nil, or a
// *ValidationError naming every bad field.
func (s *Service) Validate(req CreateRequest) error {
	_, err := s.validator.Prepare(req)
	return err
}

// numericOutOfRange is Postgres's SQLSTATE for a number too large for its
// column.
const numericOutOfRange = "22003"

// errKeyTaken means a concurrent request committed the same idempotency key
// first; the insert is rolled back and the winner's task returned.
var errKeyTaken = errors.New("idempotency key taken")

// lockNotAvailable is Postgres's SQLSTATE for a lock not had within
// lock_timeout.
const lockNotAvailable = "55P03"

// errLockWait means an insert waited flightLockWait for a lock, most often
// another transaction's uncommitted row with the same idempotency key, and
// gave up, having written nothing.
var errLockWait = errors.New("insert waited too long for a lock")

// Create validates req and, in one transaction, inserts the task's row and
// its River job. It reports whether a new task was created: a repeated
// request with the same idempotency key returns the existing task and false.
// The task belongs to ctx's tenant when one was set (WithTenant), else to
// req.Tenant, else to DefaultTenant.
//
// Errors: *ValidationError for a bad request (nothing is written),
// *IdempotencyConflictError (errors.Is ErrIdempotencyConflict) for a key
// reused with another request, *LimitError (errors.Is ErrTooManyUnfinished)
// when the tenant is at its cap of unfinished tasks.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Task, bool, error) {
	if tenant, ok := scopedTenant(ctx); ok || req.Tenant == "" {
		req.Tenant = tenant
	}
	p, err := s.validator.Prepare(req)
	if err != nil {
		return nil, false, err
	}
	if p.IdempotencyKey != nil {
		// Most repeats find the task here without inserting a job that
		// would only be rolled back; a repeat is answered even at the cap.
		t, err := s.byIdempotencyKey(ctx, p)
		if !errors.Is(err, ErrNotFound) {
			return t, false, err
		}
	}
	if err := s.checkUnfinished(ctx, p.Tenant); err != nil {
		return nil, false, err
	}

	job, found, err := s.insertGrouped(ctx, p)
	r := s.finishCreate(ctx, p, job, found, err)
	return r.Task, r.Created, r.Err
}

// insert writes the job, and through the trigger of migrations 00010/00012 its
// tasks row, in one INSERT statement: the task is accepted exactly when that
// statement's success comes back, and on an error from Postgres nothing was
// written. When no answer came back and the request has an idempotency key,
// found is the task that holds the key, if the INSERT committed after all.
//
// A request with an idempotency key waits at most flightLockWait for a lock,
// then fails with ErrKeyInUse: each wait holds a pool connection, and
// repeats of a key held by a transaction that stays open would otherwise
// take every connection of the pool.
func (s *Service) insert(ctx context.Context, p *Prepared) (job *rivertype.JobRow, found *store.TaskGetByIdempotencyKeyForRequestRow, err error) {
	if p.IdempotencyKey == nil {
		return s.insertWaiting(ctx, p, 0)
	}
	job, found, err = s.insertWaiting(ctx, p, flightLockWait)
	if !errors.Is(err, errLockWait) {
		return job, found, err
	}
	locked, err := s.tablesLocked(ctx)
	switch {
	case err != nil:
		return nil, nil, err
	case locked:
		// Another session holds the tables themselves (a migration's DDL,
		// LOCK TABLE), not this key: wait as a request without a key does,
		// for as long as the request may.
		return s.insertWaiting(ctx, p, 0)
	}
	return nil, nil, ErrKeyInUse
}

// tablesLockedSQL tells whether another session holds, or waits for, a
// lock on river_job or task_records that an INSERT's ROW EXCLUSIVE lock
// waits for (LOCK TABLE, most DDL, a migration): a request queued behind a
// long transaction makes later inserts queue behind it too. Inline, not
// sqlc: sqlc's catalog has no pg_locks.
const tablesLockedSQL = `SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'relation'
      -- pg_locks is the whole cluster's: another database's tables may
      -- have the same OIDs.
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND relation IN ('river_job'::regclass, 'task_records'::regclass)
      AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'))`

// tablesLocked tells, after a keyed insert gave up waiting for a lock,
// whether another session holds or waits for the task tables themselves;
// if not, the insert waited for the one other lock it can meet, the
// transaction that holds its idempotency key. (A table lock released
// between the two is taken for the key: a 409 with Retry-After, rarely.)
func (s *Service) tablesLocked(ctx context.Context) (bool, error) {
	var locked bool
	if err := s.pool.QueryRow(ctx, tablesLockedSQL).Scan(&locked); err != nil {
		return false, fmt.Errorf("insert waited too long for a lock, and what held it could not be read: %w", err)
	}
	return locked, nil
}

// insertWaiting is insert whose statement waits at most lockWait for a
// lock (0: as long as it may), and then fails with errLockWait, having
// written nothing.
func (s *Service) insertWaiting(ctx context.Context, p *Prepared, lockWait time.Duration) (job *rivertype.JobRow, found *store.TaskGetByIdempotencyKeyForRequestRow, err error) {
	opts := p.insertOpts()
	var res *rivertype.JobInsertResult
	late, err := riverseam.RunOwnStatementWaiting(ctx, s.pool, lockWait, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		res, err = s.jobs.InsertTx(ctx, tx, p.Args, opts)
		return err
	})
	if late != nil {
		s.logger.WarnContext(ctx, "a statement after the task's insert failed; the task is accepted", slog.Any("error", late))
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.ConstraintName == idempotencyIndex:
		return nil, nil, errKeyTaken
	case errors.As(err, &pgErr) && pgErr.Code == lockNotAvailable:
		return nil, nil, errLockWait
	case err != nil && !errors.As(err, &pgErr):
		found, err := s.afterLostAnswer(ctx, p, err)
		return nil, found, err
	case err != nil:
		return nil, nil, fmt.Errorf("insert job: %w", err)
	case res.UniqueSkippedAsDuplicate:
		// Handoff's dedup is the idempotency key; River's unique jobs
		// would return another task's job.
		return nil, nil, fmt.Errorf("kind %q sets River UniqueOpts, which Handoff does not support: use idempotency keys", res.Job.Kind)
	}
	return res.Job, nil, nil
}

// afterLostAnswer answers p after an insert whose answer never came back
// (err, not from Postgres): the INSERT may have committed. With a key, the
// key tells: found is the task that holds it. Without one, err.
func (s *Service) afterLostAnswer(ctx context.Context, p *Prepared, err error) (*store.TaskGetByIdempotencyKeyForRequestRow, error) {
	if p.IdempotencyKey != nil {
		lookCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		if row, lookErr := s.queries.TaskGetByIdempotencyKeyForRequest(lookCtx, s.pool, byKeyParams(p)); lookErr == nil {
			return row, nil
		}
	}
	return nil, fmt.Errorf("insert job: %w", err)
}

// byIdempotencyKey returns the task that holds p's key if p is the request
// that created it; the database compares the requests (handoff.request_hash).
func (s *Service) byIdempotencyKey(ctx context.Context, p *Prepared) (*Task, error) {
	row, err := s.queries.TaskGetByIdempotencyKeyForRequest(ctx, s.pool, byKeyParams(p))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get task by idempotency key: %w", err)
	}
	if !row.SameRequest {
		return nil, &IdempotencyConflictError{TaskID: row.Task.ID}
	}
	return fromRow(&row.Task)
}

func byKeyParams(p *Prepared) store.TaskGetByIdempotencyKeyForRequestParams {
	return store.TaskGetByIdempotencyKeyForRequestParams{
		Kind:           p.Kind,
		Args:           p.EncodedArgs,
		Queue:          p.Queue,
		Priority:       int32(p.Priority),    //nolint:gosec // Prepare keeps it in 1-4.
		MaxAttempts:    int32(p.MaxAttempts), //nolint:gosec // Prepare keeps it in 1-1000.
		RunAt:          p.RunAt,
		CallbackURL:    p.CallbackURL,
		Tenant:         p.Tenant,
		IdempotencyKey: p.IdempotencyKey,
	}
}

// checkUnfinished refuses a new task when the tenant has maxUnfinished
// unfinished tasks already.
func (s *Service) checkUnfinished(ctx context.Context, tenant string) error {
	if s.maxUnfinished == 0 {
		return nil
	}
	room, err := s.unfinishedRoom(ctx, tenant)
	if err != nil {
		return err
	}
	if room == 0 {
		return s.limitError(tenant)
	}
	s.rooms.take(tenant, 1)
	return nil
}

// unfinishedRoom is how many more unfinished tasks the tenant may have
// under the cap (maxUnfinished, which must be set): counted, or from a
// recent count while the tenant is far from its cap (roomCache). A caller
// that admits tasks against it tells s.rooms.take.
func (s *Service) unfinishedRoom(ctx context.Context, tenant string) (int, error) {
	now := time.Now()
	if room, ok := s.rooms.get(tenant, now); ok {
		return room, nil
	}
	s.unfinishedCounts.Add(1)
	n, err := s.queries.TaskUnfinishedCount(ctx, s.pool, store.TaskUnfinishedCountParams{Tenant: tenant, Max: int32(min(s.maxUnfinished, math.MaxInt32))}) //nolint:gosec // bounded by min
	if err != nil {
		return 0, fmt.Errorf("count unfinished tasks: %w", err)
	}
	room := max(s.maxUnfinished-int(n), 0)
	s.rooms.counted(tenant, room, now)
	return room, nil
}

// limitError refuses a task of tenant at its cap.
func (s *Service) limitError(tenant string) *LimitError {
	return &LimitError{Tenant: tenant, Max: s.maxUnfinished, RetryAfter: unfinishedRetryAfter}
}

// Get returns the task with the given ID, if it belongs to ctx's tenant
// (WithTenant; any tenant after WithAnyTenant).
//
// Errors: ErrNotFound, also for another tenant's task.
func (s *Service) Get(ctx context.Context, id int64) (*Task, error) {
	return s.get(ctx, s.pool, id)
}

// WatcherTenant is the tenant a watch of task id counts against: the
// caller's (WithTenant), or, for a request holding the task's read token
// (WithAnyTenant), the task's own. It is "" for a read-token request of a
// task that does not exist.
func WatcherTenant(ctx context.Context, db store.DBTX, id int64) (string, error) {
	if tenant, ok := scopedTenant(ctx); ok || !anyTenant(ctx) {
		return tenant, nil
	}
	tenant, err := store.New().TaskTenant(ctx, db, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("tenant of task %d: %w", id, err)
	}
	return tenant, nil
}

func (s *Service) get(ctx context.Context, db store.DBTX, id int64) (*Task, error) {
	var (
		row *store.Task
		err error
	)
	if anyTenant(ctx) {
		row, err = s.queries.TaskGetByID(ctx, db, id)
	} else {
		row, err = s.queries.TaskGetByIDForTenant(ctx, db, store.TaskGetByIDForTenantParams{ID: id, Tenant: TenantFrom(ctx)})
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get task: %w", err)
	}
	return fromRow(row)
}

// ListParams filter and page a task list. Zero values mean "no filter".
type ListParams struct {
	State string
	Kind  string
	// AfterID continues a list after the task with this ID (exclusive).
	AfterID int64
	// Limit defaults to ListLimitDefault and is capped at ListLimitMax.
	Limit int
}

// List returns ctx's tenant's tasks newest first, and the ID to pass as
// AfterID for the next page, or 0 when there are no more.
func (s *Service) List(ctx context.Context, params ListParams) ([]*Task, int64, error) {
	tenant := TenantFrom(ctx)
	limit := params.Limit
	if limit <= 0 {
		limit = ListLimitDefault
	}
	limit = min(limit, ListLimitMax)
	after := params.AfterID
	if after <= 0 {
		after = math.MaxInt64
	}
	// One row past the page tells whether a next page exists.
	maxRows := int32(limit + 1)

	var (
		rows []*store.Task
		err  error
	)
	switch {
	// A running task's record says 'available' (migration 00017): the
	// running lists start from River's running jobs.
	case params.State == "running" && params.Kind != "":
		rows, err = s.queries.TaskListPageByKindRunning(ctx, customPlan{s.pool}, store.TaskListPageByKindRunningParams{Tenant: tenant, Kind: params.Kind, AfterID: after, Max: maxRows})
	case params.State == "running":
		rows, err = s.queries.TaskListPageRunning(ctx, customPlan{s.pool}, store.TaskListPageRunningParams{Tenant: tenant, AfterID: after, Max: maxRows})
	case params.State != "" && params.Kind != "":
		rows, err = s.queries.TaskListPageByKindState(ctx, customPlan{s.pool}, store.TaskListPageByKindStateParams{Tenant: tenant, Kind: params.Kind, State: params.State, AfterID: after, Max: maxRows})
	case params.State != "":
		rows, err = s.queries.TaskListPageByState(ctx, customPlan{s.pool}, store.TaskListPageByStateParams{Tenant: tenant, State: params.State, AfterID: after, Max: maxRows})
	case params.Kind != "":
		rows, err = s.queries.TaskListPageByKind(ctx, customPlan{s.pool}, store.TaskListPageByKindParams{Tenant: tenant, Kind: params.Kind, AfterID: after, Max: maxRows})
	default:
		rows, err = s.queries.TaskListPage(ctx, customPlan{s.pool}, store.TaskListPageParams{Tenant: tenant, AfterID: after, Max: maxRows})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}

	var next int64
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	tasks := make([]*Task, len(rows))
	for i, row := range rows {
		if tasks[i], err = fromRow(row); err != nil {
			return nil, 0, err
		}
	}
	return tasks, next, nil
}

// Cancel cancels a task that has not finished. A running task is flagged and
// its worker's context cancelled; it shows "cancelled" once the worker
// returns. A finished task is returned unchanged.
//
// Errors: ErrNotFound, also for another tenant's task.
func (s *Service) Cancel(ctx context.Context, id int64) (*Task, error) {
	return s.control(ctx, id, func(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error) {
		job, err := s.jobs.JobCancelTx(ctx, tx, id)
		if err == nil && job.State == rivertype.JobStateRunning {
			// River has flagged the job and told its worker; the task
			// shows the request until the worker returns.
			if err := s.queries.TaskCancelRequestedSet(ctx, tx, id); err != nil {
				return nil, fmt.Errorf("flag cancel: %w", err)
			}
		}
		return job, err
	}, nil)
}

// Retry queues a task again: a finished one runs anew, a scheduled or
// retryable one runs now. A running task is returned unchanged.
//
// A task may be retried the moment it shows finished. A completion of the
// last attempt that River still holds (its batch completer writes up to
// 250 ms later, or seconds later when it retries a failed batch) carries
// that attempt's number, and the database skips it once the job runs
// another attempt (internal/riverseam, migration 00011).
//
// Errors: ErrNotFound (also for another tenant's task), ErrJobDeleted,
// ErrAttemptLimit.
func (s *Service) Retry(ctx context.Context, id int64) (*Task, error) {
	return s.control(ctx, id, s.jobs.JobRetryTx, ErrJobDeleted)
}

// control changes a task's job with River's method change and returns the
// task as updated by the trigger in the same transaction. errJobGone is
// returned when the task exists but its job does not; nil means that the
// task is returned as it stands. Another tenant's task is ErrNotFound and
// its job is not touched.
func (s *Service) control(ctx context.Context, id int64, change func(context.Context, pgx.Tx, int64) (*rivertype.JobRow, error), errJobGone error) (*Task, error) {
	if anyTenant(ctx) {
		// A read token reads; it never controls.
		ctx = WithTenant(ctx, DefaultTenant)
	}
	var t *Task
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The tenant's check and the change share the transaction; a
		// task's tenant never changes, so no lock is needed.
		if _, err := s.get(ctx, tx, id); err != nil {
			return err
		}
		if _, err := change(ctx, tx, id); err != nil {
			// Since River 0.49 a failed Tx method leaves the transaction
			// unusable: return, roll back, and look again outside it.
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == numericOutOfRange {
				// River counts attempts in a smallint.
				return ErrAttemptLimit
			}
			return err
		}
		var err error
		t, err = s.get(ctx, tx, id)
		return err
	})
	if errors.Is(err, rivertype.ErrNotFound) {
		t, err = s.Get(ctx, id)
		if err == nil && errJobGone != nil {
			return nil, errJobGone
		}
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// customPlan runs queries as unnamed statements (pgx's QueryExecModeExec),
// which Postgres plans with their values every time. The list queries need
// that: a cached generic plan cannot tell a small tenant from a large one
// and walks the primary key (internal/store/task.sql).
type customPlan struct {
	store.DBTX
}

func (c customPlan) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.DBTX.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...) //nolint:wrapcheck // a pass-through
}
