package task

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppendJSON: AppendJSON writes what encoding/json writes for the same
// task, for every field set and unset, strings that need escaping, raw JSON
// that needs compacting and escaping, and times in and out of UTC; and fails
// where encoding/json fails.
func TestAppendJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 10, 39, 31, 110901000, time.UTC)
	whole := at.Truncate(time.Second)
	east := at.In(time.FixedZone("east", 5*3600+30*60))
	url := "https://app.example/cb?a=1&b=<2>"
	weird := "q\"\\\b\f\n\r\t\x00\x1f<>&\u2028\u2029é\xff\xc3 end"
	for name, task := range map[string]*Task{
		"fresh": {
			ID: 1, Kind: "noop", State: "available", Args: json.RawMessage(`{}`), Queue: "default",
			Priority: 1, MaxAttempts: 25, Errors: []AttemptError{}, Result: json.RawMessage("null"),
			Progress: json.RawMessage("null"), CreatedAt: at, ScheduledAt: at,
		},
		"zero": {},
		"finished": {
			ID: 1 << 60, Kind: weird, State: "completed", Queue: weird, Priority: 4, Attempt: 3, MaxAttempts: 3,
			Args:   json.RawMessage(`{"b": [1, 2.5e10, "x<y", {"c": null}], "a": "\u2028 & \"q\""}`),
			Errors: []AttemptError{{Attempt: 1, At: whole, Error: weird}, {Attempt: 2, At: east, Error: ""}},
			Result: json.RawMessage(" 7 "), Progress: json.RawMessage(`{"done": 3, "of": 10}`),
			CreatedAt: whole, ScheduledAt: east, StartedAt: &at, FinishedAt: &east, CancelRequestedAt: &whole,
			CallbackURL: &url,
		},
		"raw edge cases": {
			Args: json.RawMessage(`[]`), Result: json.RawMessage(`0`), Progress: json.RawMessage("\n\t[ ]\r"),
			Errors: nil, CreatedAt: at, ScheduledAt: at,
		},
	} {
		want, err := json.Marshal(task)
		require.NoError(t, err, name)
		got, err := AppendJSON([]byte("prefix"), task)
		require.NoError(t, err, name)
		require.Equal(t, "prefix"+string(want), string(got), name)
	}

	for name, task := range map[string]*Task{
		"args not JSON":       {Args: json.RawMessage(`{"a":}`)},
		"result empty":        {Result: json.RawMessage{}},
		"progress truncated":  {Progress: json.RawMessage(`[1, 2`)},
		"year after 9999":     {CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"error before year 0": {Errors: []AttemptError{{At: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		"offset of a day":     {CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 24*3600))},
		"offset of -100h":     {ScheduledAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", -100*3600))},
	} {
		_, wantErr := json.Marshal(task)
		require.Error(t, wantErr, name)
		_, err := AppendJSON(nil, task)
		require.Error(t, err, name)
	}
}

// FuzzAppendJSON holds AppendJSON to encoding/json's output for any strings
// and raw JSON.
func FuzzAppendJSON(f *testing.F) {
	f.Add("noop", "default", `{"a": 1}`, "boom", int64(0))
	f.Add("<&>", "q\u2028", "[1, \"\\u003c\"]", "\xff\x00", int64(1e18))
	f.Add("é", "", `{"é": "<"}`, "\t", int64(-3))
	f.Add("x", "y", `1`, "", int64(7))
	f.Fuzz(func(t *testing.T, kind, queue, args, msg string, nanos int64) {
		// Any offset, a day or more included, from the low bits.
		at := time.Unix(0, nanos).In(time.FixedZone("z", int(nanos%(30*3600))))
		task := &Task{
			Kind: kind, Queue: queue, Args: json.RawMessage(args), Errors: []AttemptError{{At: at, Error: msg}},
			CreatedAt: at, ScheduledAt: at, CallbackURL: &msg,
		}
		want, wantErr := json.Marshal(task)
		got, err := AppendJSON(nil, task)
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	})
}

// TestPreparedMetadata: the metadata written by hand is what json.Marshal
// writes for the same members as a map.
func TestPreparedMetadata(t *testing.T) {
	t.Parallel()
	key, url := `k<"1">&é`, "https://app.example/cb?a=<1>&b=\u2028"
	runAt := time.Date(2026, 12, 7, 11, 0, 0, 500, time.FixedZone("x", 3600))
	for _, p := range []*Prepared{
		{Tenant: "default"},
		{Tenant: "<t>", IdempotencyKey: &key},
		{Tenant: "a", IdempotencyKey: &key, RunAt: &runAt, CallbackURL: &url},
		{Tenant: "", RunAt: &runAt},
	} {
		m := map[string]string{"handoff_tenant": p.Tenant}
		if p.IdempotencyKey != nil {
			m["handoff_idempotency_key"] = *p.IdempotencyKey
		}
		if p.RunAt != nil {
			m["handoff_run_at"] = p.RunAt.Format(time.RFC3339Nano)
		}
		if p.CallbackURL != nil {
			m["handoff_callback_url"] = *p.CallbackURL
		}
		want, err := json.Marshal(m)
		require.NoError(t, err)
		require.Equal(t, string(want), string(p.metadata()))
	}
}
