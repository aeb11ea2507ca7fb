package jobs_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/jobs"
)

// recordingWriter keeps what reached "the database", to count writes; the
// throttle is what is under test, not storage (sleep_test writes to
// Postgres through live.ProgressWriter).
type recordingWriter struct {
	mu     sync.Mutex
	writes []jobs.Progress
}

func (w *recordingWriter) WriteProgress(_ context.Context, _ int64, raw json.RawMessage) error {
	var p jobs.Progress
	if err := json.Unmarshal(raw, &p); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, p)
	return nil
}

func (w *recordingWriter) all() []jobs.Progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]jobs.Progress(nil), w.writes...)
}

func TestProgressReporter(t *testing.T) {
	t.Parallel()

	t.Run("ChattyTaskIsThrottledAndLastReportLands", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		w := &recordingWriter{}
		r := jobs.NewProgressReporter(w, nil, 1, time.Hour)
		for i := range 10_000 {
			r.Report(ctx, jobs.Progress{Done: float64(i + 1), Total: 10_000})
		}
		require.Len(t, w.all(), 1, "one write per interval: the first")
		r.Flush(ctx)
		got := w.all()
		require.Len(t, got, 2)
		require.InDelta(t, 10_000.0, got[1].Done, 0, "the last report lands on Flush")
		r.Flush(ctx)
		require.Len(t, w.all(), 2, "nothing held, nothing written")
	})

	t.Run("HeldReportIsWrittenWhenTheIntervalPasses", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		w := &recordingWriter{}
		r := jobs.NewProgressReporter(w, nil, 1, 20*time.Millisecond)
		r.Report(ctx, jobs.Progress{Done: 1, Total: 3})
		r.Report(ctx, jobs.Progress{Done: 2, Total: 3, Message: "held"})
		require.Eventually(t, func() bool { return len(w.all()) == 2 }, 10*time.Second, 5*time.Millisecond)
		require.Equal(t, "held", w.all()[1].Message)
	})

	t.Run("NilWriterDropsReports", func(t *testing.T) {
		t.Parallel()
		r := jobs.NewProgressReporter(nil, nil, 1, 0)
		require.NotPanics(t, func() {
			r.Report(t.Context(), jobs.Progress{Done: 1})
			r.Flush(t.Context())
		})
	})
}
