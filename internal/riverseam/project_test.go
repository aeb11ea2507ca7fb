package riverseam_test

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/riverseam"
)

// TestTaskRowMetadata: a job's metadata is read by exact name, as the
// triggers read it; what jsonb never returns but encoding/json took
// (duplicate names, invalid UTF-8) is still taken, the last name winning;
// and a completed job's output is its result, null included.
func TestTaskRowMetadata(t *testing.T) {
	t.Parallel()
	at := time.Now()
	job := func(state rivertype.JobState, meta string) *rivertype.JobRow {
		return &rivertype.JobRow{
			ID: 1, Kind: "noop", Queue: "default", State: state, EncodedArgs: []byte(`{}`),
			Metadata: []byte(meta), CreatedAt: at, ScheduledAt: at,
		}
	}
	for name, tc := range map[string]struct {
		job            *rivertype.JobRow
		tenant, result string
		key            *string
	}{
		"tenant":               {job: job(rivertype.JobStateAvailable, `{"handoff_tenant": "a"}`), tenant: "a"},
		"none":                 {job: job(rivertype.JobStateAvailable, `{}`), tenant: "default"},
		"case-variant ignored": {job: job(rivertype.JobStateAvailable, `{"Handoff_Tenant": "a", "HANDOFF_TENANT": "b"}`), tenant: "default"},
		"duplicate, last wins": {job: job(rivertype.JobStateAvailable, `{"handoff_tenant": "a", "handoff_tenant": "b"}`), tenant: "b"},
		"invalid UTF-8":        {job: job(rivertype.JobStateAvailable, "{\"handoff_idempotency_key\": \"k\xff\"}"), tenant: "default", key: new("k\ufffd")},
		"output":               {job: job(rivertype.JobStateCompleted, `{"output": {"n": 1}}`), tenant: "default", result: `{"n": 1}`},
		"output null":          {job: job(rivertype.JobStateCompleted, `{"output": null}`), tenant: "default", result: `null`},
		"output not completed": {job: job(rivertype.JobStateRetryable, `{"output": 1}`), tenant: "default"},
	} {
		row, err := riverseam.TaskRow(tc.job)
		require.NoError(t, err, name)
		require.Equal(t, tc.tenant, row.Tenant, name)
		require.Equal(t, tc.result, string(row.Result), name)
		require.Equal(t, tc.key, row.IdempotencyKey, name)
		require.JSONEq(t, `[]`, string(row.Errors), name)
	}
}
