// Package jobs holds Handoff's task kinds: for each, an args type that the API
// validates and River stores, and the worker that River runs.
//
// Kinds is the one list of kinds. Each entry is built from a single args type
// by a generic helper, so the strict decoding behind the API's 422 answers and
// the worker registered with River cannot drift apart.
package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/riverqueue/river"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/riverseam"
)

// Args is what every kind's args type provides: River's Kind and a Validate
// that reports each bad field.
type Args interface {
	river.JobArgs

	// Validate returns nil or a ArgsError naming every bad field. It must
	// depend on the args alone (no clock, environment or network): it runs
	// when a task is created through the API or the Go package, and again
	// before every attempt, where a refusal discards the task for good.
	// Loosening it is not rolling-safe: a replica still running the old
	// rule discards what a new one accepted (deploy the new rule first,
	// then let clients use it).
	Validate() error
}

// Deps are the dependencies workers need from the rest of the service.
type Deps struct {
	// Logger receives workers' logs.
	Logger *slog.Logger

	// Progress stores the progress reports of long tasks. Nil disables
	// them.
	Progress ProgressWriter

	// HTTP is what the http kind needs (docs/http-kind.md).
	HTTP HTTPDeps
}

// Kinds returns every task kind Handoff knows. Adding a kind means writing
// its file (args, Validate, worker) and adding one line here.
func Kinds(deps Deps) []Kind {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return []Kind{
		NewKind[NoopArgs](&NoopWorker{}),
		NewKind[SleepArgs](&SleepWorker{Progress: deps.Progress, Logger: deps.Logger}),
		NewKind[HTTPArgs](newHTTPWorker(deps)),
	}
}

// CheckArgs returns a function that tells whether encoded args decode, as
// River decodes them for the worker (encoding/json), into the args type of
// their kind among kinds, and pass its Validate: nil when they do or the
// kind is not among kinds, else the decoder's error, or Validate's wrapped
// in riverseam.ErrArgsInvalid. riverseam.Middleware.CheckArgs takes it.
func CheckArgs(kinds []Kind) func(kind string, encodedArgs []byte) error {
	types := make(map[string]reflect.Type, len(kinds))
	for _, k := range kinds {
		types[k.Name] = k.ArgsType
	}
	return func(kind string, encodedArgs []byte) error {
		t, ok := types[kind]
		if !ok {
			return nil
		}
		args := reflect.New(t)
		if err := json.Unmarshal(encodedArgs, args.Interface()); err != nil {
			return err //nolint:wrapcheck // the decoder's words are the reason
		}
		if v, ok := args.Elem().Interface().(Args); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("%w: %w", riverseam.ErrArgsInvalid, err)
			}
		}
		return nil
	}
}

// validatingWorker runs its kind's Validate before the work: the API and
// the Go package refuse args that Validate refuses, but SQL enqueue checks
// only what the kind's fields and handoff tags say (handoff.kinds), and a
// job can be inserted into river_job straight. Such args never reach the
// worker: the attempt fails with riverseam.ErrArgsInvalid, and the seam's
// middleware discards the task with Validate's reason (CheckArgs).
type validatingWorker[T Args] struct {
	river.Worker[T]
}

func (w validatingWorker[T]) Work(ctx context.Context, job *river.Job[T]) error {
	if err := job.Args.Validate(); err != nil {
		// A cancel, so that the task ends at once even without the seam's
		// middleware, which discards it with this reason.
		return river.JobCancel(fmt.Errorf("not run: %w: %w", riverseam.ErrArgsInvalid, err))
	}
	return w.Worker.Work(ctx, job) //nolint:wrapcheck // the worker's own error
}

// Kind is one task kind: its name, how to parse its args, and how to register
// its worker with River.
type Kind struct {
	// Name is the kind's name, as in the API's "kind" field and River's
	// river_job.kind column.
	Name string

	// ArgsType is the kind's args type, from which internal/task derives
	// the args' shape that SQL enqueue checks (handoff.kinds).
	ArgsType reflect.Type

	parseFunc     func(raw json.RawMessage) (river.JobArgs, error)
	addWorkerFunc func(workers *river.Workers) error

	// uniqueErr is why the kind cannot be registered: its args ask River
	// for unique jobs, or their InsertOpts cannot be read.
	uniqueErr error
}

// NewKind builds a Kind from its args type and worker; Kinds lists one per
// kind. Tests use it to add kinds of their own.
func NewKind[T Args](worker river.Worker[T]) Kind {
	var zero T
	return Kind{
		Name:      zero.Kind(),
		ArgsType:  reflect.TypeFor[T](),
		uniqueErr: checkNotUnique(zero),
		parseFunc: func(raw json.RawMessage) (river.JobArgs, error) {
			var args T
			decodeErr := decodeStrict(raw, &args)
			var problems ArgsError
			if decodeErr != nil && !errors.As(decodeErr, &problems) {
				return nil, decodeErr
			}
			// Validate what did decode too, so that every problem is
			// reported at once; a field's decode error comes first.
			var invalid ArgsError
			if err := args.Validate(); err != nil && !errors.As(err, &invalid) {
				invalid = ArgsError{"": err.Error()}
			}
			if len(problems) == 0 && len(invalid) == 0 {
				return args, nil
			}
			merged := ArgsError{}
			maps.Copy(merged, invalid)
			maps.Copy(merged, problems)
			if _, whole := problems[""]; whole {
				// Not an object at all: nothing else is worth saying.
				merged = problems
			}
			return nil, merged
		},
		addWorkerFunc: func(workers *river.Workers) error {
			return river.AddWorkerSafely[T](workers, validatingWorker[T]{Worker: worker})
		},
	}
}

// checkNotUnique refuses args whose InsertOpts set River's UniqueOpts: a
// unique insert that River skips returns another task's job, so a request
// that River took for a duplicate would fail; Handoff deduplicates with
// idempotency keys instead. It looks at the zero value, so options that
// depend on field values escape it (Service.Create still refuses those, per
// request), and an InsertOpts that panics on the zero value is reported, not
// left to crash start-up.
func checkNotUnique(zero river.JobArgs) (err error) {
	withOpts, ok := zero.(river.JobArgsWithInsertOpts)
	if !ok {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("InsertOpts panics on the zero value of its args (%v): it must not depend on their fields", r)
		}
	}()
	// UniqueOpts holds a slice, so it cannot be compared with ==; a zero
	// value is what River's own (unexported) isEmpty checks for.
	if !reflect.ValueOf(withOpts.InsertOpts().UniqueOpts).IsZero() {
		return errors.New("sets River UniqueOpts in InsertOpts, which Handoff does not support: remove them and let clients send an Idempotency-Key")
	}
	return nil
}

// Parse decodes raw strictly (unknown fields and trailing data are errors)
// into the kind's args type and validates it. Any error it returns is a
// ArgsError that can be shown to the client.
func (k Kind) Parse(raw json.RawMessage) (river.JobArgs, error) {
	return k.parseFunc(raw)
}

// Workers registers the workers of kinds with a new River Workers set. It
// refuses a kind whose args set River's UniqueOpts (checkNotUnique), so that
// the server stops at start-up rather than at the first duplicate.
func Workers(kinds []Kind) (*river.Workers, error) {
	workers := river.NewWorkers()
	for _, k := range kinds {
		if k.uniqueErr != nil {
			return nil, fmt.Errorf("kind %q: %w", k.Name, k.uniqueErr)
		}
		if err := k.addWorkerFunc(workers); err != nil {
			return nil, fmt.Errorf("add worker for kind %q: %w", k.Name, err)
		}
	}
	return workers, nil
}

// MaxResultBytes bounds a task's result as encoded JSON. A result is
// returned by every GET of its task, so it is meant to be small: larger
// outputs belong in storage of their own, with a reference in the result.
const MaxResultBytes = 1 << 20

// ResultTooLargeError is the reason a task whose result exceeds
// MaxResultBytes is cancelled.
type ResultTooLargeError struct {
	Size int
}

func (e *ResultTooLargeError) Error() string {
	return fmt.Sprintf("result is %d bytes of JSON, over the limit of %d: store large outputs elsewhere and return a reference", e.Size, MaxResultBytes)
}

// RecordResult records a task's result; River stores it on the job in the
// update that completes it, and the tasks trigger copies it in that same
// transaction. A result that cannot be encoded or is over MaxResultBytes
// would fail the same way on every attempt, so the task is cancelled at
// once with the reason in its errors instead of being retried.
func RecordResult(ctx context.Context, result any) error {
	raw, err := json.Marshal(result)
	if err != nil {
		return river.JobCancel(fmt.Errorf("result cannot be encoded as JSON: %w", err))
	}
	if len(raw) > MaxResultBytes {
		return river.JobCancel(&ResultTooLargeError{Size: len(raw)})
	}
	return river.RecordOutput(ctx, json.RawMessage(raw))
}

// ArgsError maps an args field (a JSON name) to what is wrong with it. The
// empty key stands for the args object as a whole.
type ArgsError map[string]string

// Error lists the problems in a stable order.
func (e ArgsError) Error() string {
	parts := make([]string, 0, len(e))
	for _, field := range slices.Sorted(maps.Keys(e)) {
		if field == "" {
			parts = append(parts, e[field])
			continue
		}
		parts = append(parts, field+": "+e[field])
	}
	return strings.Join(parts, "; ")
}

// decodeStrict is the args decoder, the API's one strict decoder
// (internal/jsonstrict): an args object must be exactly one JSON object
// whose fields the kind knows, named exactly. Missing or null args mean {}.
func decodeStrict(raw json.RawMessage, dst any) error {
	// Like a missing one, "args": null means none given, and none given
	// decodes to dst as it is: the zero args, which Validate then checks.
	switch trimmed := bytes.TrimSpace(raw); string(trimmed) {
	case "", "null", "{}":
		return nil
	}
	err := jsonstrict.Decode(raw, dst)
	var (
		syntaxErr *jsonstrict.SyntaxError
		fieldErrs jsonstrict.FieldsError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return ArgsError{"": syntaxErr.Detail}
	case errors.As(err, &fieldErrs):
		return ArgsError(fieldErrs)
	}
	return err
}
