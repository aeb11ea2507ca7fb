package task

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/handoff/handoff/jobs"
)

// BenchmarkPrepare measures the validation every POST /v1/tasks runs before
// it touches the database: kind lookup, strict args decoding, the kind's
// Validate and options (the request hash is the database's).
// No database: it runs under -short too.
func BenchmarkPrepare(b *testing.B) {
	v := NewValidator(jobs.Kinds(jobs.Deps{}), nil, nil)
	runAt := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, bc := range []struct {
		name string
		req  CreateRequest
	}{
		{"noop", CreateRequest{Kind: "noop", Args: json.RawMessage(`{}`)}},
		{"sleep", CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 2, "fail_times": 1}`), Priority: 2, MaxAttempts: 5}},
		{"sleep_idempotent", CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 2}`), RunAt: &runAt, IdempotencyKey: "order-42-receipt"}},
		{"invalid", CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 7200}`), Priority: 9}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := v.Prepare(bc.req)
				if bc.name == "invalid" {
					if err == nil {
						b.Fatal("invalid request accepted")
					}
					continue
				}
				if err != nil || p == nil {
					b.Fatalf("prepare: %v", err)
				}
			}
		})
	}
}
