package jobs_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/jobs"
)

func kindByName(t *testing.T, name string) jobs.Kind {
	t.Helper()
	for _, k := range jobs.Kinds(jobs.Deps{}) {
		if k.Name == name {
			return k
		}
	}
	t.Fatalf("no kind %q", name)
	return jobs.Kind{}
}

func TestKinds(t *testing.T) {
	t.Parallel()

	kinds := jobs.Kinds(jobs.Deps{})
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		names = append(names, k.Name)
	}
	// The built-in kinds; a kind you add joins them.
	require.Subset(t, names, []string{"noop", "sleep"})

	_, err := jobs.Workers(kinds)
	require.NoError(t, err)

	// Registering a kind twice is a programming error River reports.
	_, err = jobs.Workers(append(kinds, kinds[0]))
	require.Error(t, err)

	// River's unique jobs would hand a request another task's job: refused
	// at start-up, naming the kind and the way out.
	_, err = jobs.Workers(append(kinds, jobs.NewKind[uniqueArgs](river.WorkFunc(func(context.Context, *river.Job[uniqueArgs]) error { return nil }))))
	require.ErrorContains(t, err, `kind "unique_test": sets River UniqueOpts`)
	require.ErrorContains(t, err, "Idempotency-Key")

	// Other insert options are fine.
	_, err = jobs.Workers(append(kinds, jobs.NewKind[optsArgs](river.WorkFunc(func(context.Context, *river.Job[optsArgs]) error { return nil }))))
	require.NoError(t, err)

	// An InsertOpts that reads a nil field of the zero value is an error
	// at start-up, not a panic.
	_, err = jobs.Workers(append(kinds, jobs.NewKind[*panicArgs](river.WorkFunc(func(context.Context, *river.Job[*panicArgs]) error { return nil }))))
	require.ErrorContains(t, err, `kind "panic_test": InsertOpts panics on the zero value`)
}

// uniqueArgs is a kind that asks River for unique jobs.
type uniqueArgs struct{}

func (uniqueArgs) Kind() string    { return "unique_test" }
func (uniqueArgs) Validate() error { return nil }
func (uniqueArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{rivertype.JobStateAvailable}}}
}

// optsArgs sets insert options other than UniqueOpts.
type optsArgs struct{}

func (optsArgs) Kind() string    { return "opts_test" }
func (optsArgs) Validate() error { return nil }
func (optsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "default", Priority: 2, MaxAttempts: 5, Tags: []string{"t"}}
}

// panicArgs reads its fields in InsertOpts: on the zero value (a nil
// pointer) that panics.
type panicArgs struct{ Queue string }

func (*panicArgs) Kind() string    { return "panic_test" }
func (*panicArgs) Validate() error { return nil }
func (a *panicArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: a.Queue}
}

func TestKindParse(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		kind    string
		args    string
		wantErr jobs.ArgsError
	}{
		{name: "noop empty object", kind: "noop", args: `{}`},
		{name: "noop missing args", kind: "noop", args: ``},
		{name: "noop unknown field", kind: "noop", args: `{"x":1}`, wantErr: jobs.ArgsError{"x": "unknown field"}},
		{name: "noop array", kind: "noop", args: `[]`, wantErr: jobs.ArgsError{"": "must be an object, not an array"}},
		{name: "sleep ok", kind: "sleep", args: `{"seconds": 1.5, "fail_times": 2}`},
		{name: "sleep zero", kind: "sleep", args: `{"seconds": 0}`},
		{name: "sleep max", kind: "sleep", args: `{"seconds": 3600}`},
		{name: "sleep missing seconds", kind: "sleep", args: `{}`, wantErr: jobs.ArgsError{"seconds": "is required"}},
		{name: "sleep too long", kind: "sleep", args: `{"seconds": 3600.5}`, wantErr: jobs.ArgsError{"seconds": "must be between 0 and 3600"}},
		{name: "sleep negative", kind: "sleep", args: `{"seconds": -1, "fail_times": -1}`, wantErr: jobs.ArgsError{"seconds": "must be between 0 and 3600", "fail_times": "must be between 0 and 100"}},
		{name: "sleep wrong type", kind: "sleep", args: `{"seconds": "ten"}`, wantErr: jobs.ArgsError{"seconds": "must be a number, not a string"}},
		{name: "sleep fractional fail_times", kind: "sleep", args: `{"seconds": 1, "fail_times": 1.5}`, wantErr: jobs.ArgsError{"fail_times": "must be an integer, not 1.5"}},
		{name: "sleep case variant", kind: "sleep", args: `{"SECONDS": 1}`, wantErr: jobs.ArgsError{"SECONDS": `unknown field (names are case-sensitive: did you mean "seconds"?)`, "seconds": "is required"}},
		{name: "sleep duplicate", kind: "sleep", args: `{"seconds": 1, "seconds": 2}`, wantErr: jobs.ArgsError{"": `malformed JSON: field "seconds" is given twice at byte 15; give each field once`}},
		{name: "sleep every problem at once", kind: "sleep", args: `{"seconds": "ten", "fail_times": 1.5, "x": 1}`, wantErr: jobs.ArgsError{"seconds": "must be a number, not a string", "fail_times": "must be an integer, not 1.5", "x": "unknown field"}},
		{name: "sleep integral float", kind: "sleep", args: `{"seconds": 1, "fail_times": 2.0}`},
		{name: "sleep trailing data", kind: "sleep", args: `{"seconds": 1} {}`, wantErr: jobs.ArgsError{"": "malformed JSON: data after the value at byte 16; send exactly one JSON value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			args, err := kindByName(t, tt.kind).Parse(json.RawMessage(tt.args))
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, tt.kind, args.Kind())
				return
			}
			var argsErr jobs.ArgsError
			require.ErrorAs(t, err, &argsErr)
			require.Equal(t, tt.wantErr, argsErr)
		})
	}
}

func TestArgsErrorError(t *testing.T) {
	t.Parallel()

	err := jobs.ArgsError{"seconds": "is required", "": "bad", "fail_times": "too many"}
	require.Equal(t, "bad; fail_times: too many; seconds: is required", err.Error())
}
