package task

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/store"
	"github.com/handoff/handoff/jobs"
)

// Limits on a create request.
const (
	MaxAttemptsLimit      = 1000
	IdempotencyKeyMaxLen  = 255
	DefaultQueue          = river.QueueDefault
	ListLimitDefault      = 50
	ListLimitMax          = 100
	runAtFutureLimitYears = 10
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
	pool    *pgxpool.Pool
	jobs    JobClient
	kinds   map[string]jobs.Kind
	queues  map[string]bool
	queries *store.Queries
	nowFunc func() time.Time
	logger  *slog.Logger
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
}

// NewService returns a Service that writes through pool and inserts jobs
// with client, accepting the given kinds.
func NewService(pool *pgxpool.Pool, client JobClient, kinds []jobs.Kind, opts *ServiceOpts) *Service {
	if opts == nil {
		opts = &ServiceOpts{}
	}
	s := &Service{
		pool:    pool,
		jobs:    client,
		kinds:   make(map[string]jobs.Kind, len(kinds)),
		queues:  map[string]bool{DefaultQueue: true},
		queries: store.New(),
		nowFunc: opts.NowFunc,
		logger:  cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
	}
	if len(opts.Queues) > 0 {
		s.queues = make(map[string]bool, len(opts.Queues))
		for _, q := range opts.Queues {
			s.queues[q] = true
		}
	}
	if s.nowFunc == nil {
		s.nowFunc = time.Now
	}
	for _, k := range kinds {
		s.kinds[k.Name] = k
	}
	return s
}

// CreateRequest is a request to run a task.
type CreateRequest struct {
	Kind           string          `json:"kind"`
	Args           json.RawMessage `json:"args"`
	Queue          string          `json:"queue,omitempty"`
	Priority       int             `json:"priority,omitempty"`
	MaxAttempts    int             `json:"max_attempts,omitempty"`
	RunAt          *time.Time      `json:"run_at,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// prepared is a validated CreateRequest, ready to insert.
type prepared struct {
	args        river.JobArgs
	opts        *river.InsertOpts
	key         *string
	requestHash []byte
}

// prepare validates req completely before anything touches the database, so
// a rejected request writes nothing.
func (s *Service) prepare(req CreateRequest) (*prepared, error) {
	problems := map[string]string{}
	var args river.JobArgs
	switch kind, ok := s.kinds[req.Kind]; {
	case req.Kind == "":
		problems["kind"] = "is required; known kinds: " + s.kindNames()
	case !ok:
		problems["kind"] = fmt.Sprintf("unknown kind %s; known kinds: %s", jsonstrict.Quote(req.Kind), s.kindNames())
	default:
		var err error
		if args, err = kind.Parse(req.Args); err != nil {
			var argsErr jobs.ArgsError
			if !errors.As(err, &argsErr) {
				// A kind's Validate may return any error; it still describes
				// the client's args.
				argsErr = jobs.ArgsError{"": err.Error()}
			}
			for field, msg := range argsErr {
				problems[strings.TrimSuffix("args."+field, ".")] = msg
			}
		}
	}

	queue := req.Queue
	if queue == "" {
		queue = DefaultQueue
	} else if !s.queues[queue] {
		problems["queue"] = fmt.Sprintf("unknown queue %s; served queues: %s", jsonstrict.Quote(queue), strings.Join(slices.Sorted(maps.Keys(s.queues)), ", "))
	}
	priority := req.Priority
	if priority == 0 {
		priority = 1
	} else if priority < 1 || priority > 4 {
		problems["priority"] = "must be between 1 (highest) and 4"
	}
	if req.MaxAttempts < 0 || req.MaxAttempts > MaxAttemptsLimit {
		problems["max_attempts"] = fmt.Sprintf("must be between 1 and %d", MaxAttemptsLimit)
	}
	var scheduledAt time.Time
	if req.RunAt != nil {
		now := s.nowFunc()
		switch runAt := req.RunAt.UTC(); {
		case runAt.After(now.AddDate(runAtFutureLimitYears, 0, 0)):
			problems["run_at"] = fmt.Sprintf("must be within %d years from now", runAtFutureLimitYears)
		case runAt.After(now):
			scheduledAt = runAt
		default:
			// A time already past means now. River would store it as
			// scheduled and leave it to its scheduler, up to 5 s later.
		}
	}
	var key *string
	if req.IdempotencyKey != "" {
		switch {
		case len(req.IdempotencyKey) > IdempotencyKeyMaxLen:
			problems["idempotency_key"] = fmt.Sprintf("must be at most %d bytes", IdempotencyKeyMaxLen)
		case !ValidText(req.IdempotencyKey):
			problems["idempotency_key"] = "must be valid UTF-8 without NUL characters"
		case strings.TrimSpace(req.IdempotencyKey) != req.IdempotencyKey:
			// The header form cannot carry them (HTTP trims them), so a
			// key with them could never be matched by a header resend.
			problems["idempotency_key"] = "must not begin or end with white space"
		}
		key = &req.IdempotencyKey
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Fields: problems}
	}

	p := &prepared{
		args: args,
		opts: &river.InsertOpts{
			Queue:       queue,
			Priority:    priority,
			MaxAttempts: req.MaxAttempts,
			ScheduledAt: scheduledAt,
		},
		key: key,
	}
	if key != nil {
		hash, err := requestHash(req.Kind, args, p.opts)
		if err != nil {
			return nil, err
		}
		p.requestHash = hash
		// The insert trigger (migration 00010) copies these to the
		// tasks row, where the unique index enforces the key.
		p.opts.Metadata, err = json.Marshal(map[string]string{
			riverseam.MetadataKeyIdempotencyKey: *key,
			riverseam.MetadataKeyRequestHash:    hex.EncodeToString(hash),
		})
		if err != nil {
			return nil, fmt.Errorf("encode idempotency metadata: %w", err)
		}
	}
	return p, nil
}

// Validate checks req as Create does, without writing anything: nil, or a
// *ValidationError naming every bad field.
func (s *Service) Validate(req CreateRequest) error {
	_, err := s.prepare(req)
	return err
}

// ValidText reports whether s can be stored in a Postgres text column:
// valid UTF-8 and no NUL, which Postgres refuses.
func ValidText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// requestHash identifies a request by its meaning, not its bytes: args are
// hashed as re-encoded from their parsed form, so field order and spacing do
// not make two equal requests differ.
func requestHash(kind string, args river.JobArgs, opts *river.InsertOpts) ([]byte, error) {
	canonical, err := json.Marshal(struct {
		Kind        string        `json:"kind"`
		Args        river.JobArgs `json:"args"`
		Queue       string        `json:"queue"`
		Priority    int           `json:"priority"`
		MaxAttempts int           `json:"max_attempts"`
		RunAt       time.Time     `json:"run_at"`
	}{kind, args, opts.Queue, opts.Priority, cmp.Or(opts.MaxAttempts, river.MaxAttemptsDefault), opts.ScheduledAt})
	if err != nil {
		return nil, fmt.Errorf("encode request for hashing: %w", err)
	}
	sum := sha256.Sum256(canonical)
	return sum[:], nil
}

func (s *Service) kindNames() string {
	return strings.Join(slices.Sorted(maps.Keys(s.kinds)), ", ")
}

// errKeyTaken means a concurrent request committed the same idempotency key
// first; the insert is rolled back and the winner's task returned.
var errKeyTaken = errors.New("idempotency key taken")

// Create validates req and, in one transaction, inserts the task's row and
// its River job. It reports whether a new task was created: a repeated
// request with the same idempotency key returns the existing task and false.
//
// Errors: *ValidationError for a bad request (nothing is written),
// ErrIdempotencyConflict for a key reused with another request.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Task, bool, error) {
	p, err := s.prepare(req)
	if err != nil {
		return nil, false, err
	}
	if p.key != nil {
		// Most repeats find the task here without inserting a job that
		// would only be rolled back.
		t, err := s.byIdempotencyKey(ctx, p)
		if !errors.Is(err, ErrNotFound) {
			return t, false, err
		}
	}

	job, found, err := s.insert(ctx, p)
	switch {
	case errors.Is(err, errKeyTaken):
		t, err := s.byIdempotencyKey(ctx, p)
		return t, false, err
	case err != nil:
		return nil, false, err
	case found != nil:
		// The insert's answer was lost, but a task with this key and this
		// request exists: most likely this request's own.
		if !bytes.Equal(found.RequestHash, p.requestHash) {
			return nil, false, ErrIdempotencyConflict
		}
		t, err := fromRow(found)
		return t, true, err
	}
	row, err := riverseam.TaskRow(job)
	if err != nil {
		return nil, false, err
	}
	t, err := fromRow(row)
	return t, true, err
}

// idempotencyIndex is the unique index that refuses a second task with the
// same idempotency key (migration 00009).
const idempotencyIndex = "tasks_idempotency_key_idx"

// Postgres's SQLSTATEs that the service turns into its own errors.
const (
	uniqueViolation   = "23505"
	numericOutOfRange = "22003"
)

// insert writes the job, and through the trigger of migration 00010 its
// tasks row, in one INSERT statement: the task is accepted exactly when that
// statement's success comes back, and on an error from Postgres nothing was
// written. When no answer came back and the request has an idempotency key,
// found is the task that holds the key, if the INSERT committed after all.
func (s *Service) insert(ctx context.Context, p *prepared) (job *rivertype.JobRow, found *store.Task, err error) {
	var res *rivertype.JobInsertResult
	late, err := riverseam.RunOwnStatement(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		res, err = s.jobs.InsertTx(ctx, tx, p.args, p.opts)
		return err
	})
	if late != nil {
		s.logger.WarnContext(ctx, "a statement after the task's insert failed; the task is accepted", slog.Any("error", late))
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.ConstraintName == idempotencyIndex:
		return nil, nil, errKeyTaken
	case err != nil && p.key != nil && !errors.As(err, &pgErr):
		// No answer from Postgres: the INSERT may have committed. The key
		// tells.
		lookCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if row, lookErr := s.queries.TaskGetByIdempotencyKey(lookCtx, s.pool, p.key); lookErr == nil {
			return nil, row, nil
		}
		return nil, nil, fmt.Errorf("insert job: %w", err)
	case err != nil:
		return nil, nil, fmt.Errorf("insert job: %w", err)
	case res.UniqueSkippedAsDuplicate:
		// Handoff's dedup is the idempotency key; River's unique jobs
		// would return another task's job.
		return nil, nil, fmt.Errorf("kind %q sets River UniqueOpts, which Handoff does not support: use idempotency keys", res.Job.Kind)
	}
	return res.Job, nil, nil
}

func (s *Service) byIdempotencyKey(ctx context.Context, p *prepared) (*Task, error) {
	row, err := s.queries.TaskGetByIdempotencyKey(ctx, s.pool, p.key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get task by idempotency key: %w", err)
	}
	if !bytes.Equal(row.RequestHash, p.requestHash) {
		return nil, ErrIdempotencyConflict
	}
	return fromRow(row)
}

// Get returns the task with the given ID.
//
// Errors: ErrNotFound.
func (s *Service) Get(ctx context.Context, id int64) (*Task, error) {
	return s.get(ctx, s.pool, id)
}

func (s *Service) get(ctx context.Context, db store.DBTX, id int64) (*Task, error) {
	row, err := s.queries.TaskGetByID(ctx, db, id)
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

// List returns tasks newest first, and the ID to pass as AfterID for the next
// page, or 0 when there are no more.
func (s *Service) List(ctx context.Context, params ListParams) ([]*Task, int64, error) {
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
	case params.State != "" && params.Kind != "":
		rows, err = s.queries.TaskListPageByKindState(ctx, s.pool, store.TaskListPageByKindStateParams{Kind: params.Kind, State: params.State, AfterID: after, Max: maxRows})
	case params.State != "":
		rows, err = s.queries.TaskListPageByState(ctx, s.pool, store.TaskListPageByStateParams{State: params.State, AfterID: after, Max: maxRows})
	case params.Kind != "":
		rows, err = s.queries.TaskListPageByKind(ctx, s.pool, store.TaskListPageByKindParams{Kind: params.Kind, AfterID: after, Max: maxRows})
	default:
		rows, err = s.queries.TaskListPage(ctx, s.pool, store.TaskListPageParams{AfterID: after, Max: maxRows})
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
// Errors: ErrNotFound.
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
// Errors: ErrNotFound, ErrJobDeleted, ErrAttemptLimit.
func (s *Service) Retry(ctx context.Context, id int64) (*Task, error) {
	return s.control(ctx, id, s.jobs.JobRetryTx, ErrJobDeleted)
}

// control changes a task's job with River's method change and returns the
// task as updated by the trigger in the same transaction. errJobGone is
// returned when the task exists but its job does not; nil means that the
// task is returned as it stands.
func (s *Service) control(ctx context.Context, id int64, change func(context.Context, pgx.Tx, int64) (*rivertype.JobRow, error), errJobGone error) (*Task, error) {
	var t *Task
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
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
