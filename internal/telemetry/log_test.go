package telemetry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/telemetry"
)

func TestOutcome(t *testing.T) {
	t.Parallel()

	job := func(attempt, maxAttempts int) *rivertype.JobRow {
		return &rivertype.JobRow{Attempt: attempt, MaxAttempts: maxAttempts}
	}
	failure := errors.New("boom")
	for _, c := range []struct {
		job  *rivertype.JobRow
		err  error
		want string
	}{
		{job(1, 3), nil, "completed"},
		{job(1, 3), failure, "failed"},
		{job(3, 3), failure, "discarded"},
		{job(3, 3), river.JobCancel(failure), "cancelled"},
		{job(1, 3), river.JobSnooze(time.Minute), "snoozed"},
		{job(1, 1), river.JobSnooze(time.Minute), "snoozed"},
	} {
		require.Equal(t, c.want, telemetry.Outcome(c.job, c.err), "attempt %d/%d, %v", c.job.Attempt, c.job.MaxAttempts, c.err)
	}
}
