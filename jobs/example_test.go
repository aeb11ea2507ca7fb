package jobs_test

import (
	"encoding/json"
	"fmt"

	"github.com/handoff/handoff/jobs"
)

// Each kind parses its args strictly and validates them; the API answers 422
// with these messages, and a valid value is what River stores and the worker
// receives.
func ExampleKind_Parse() {
	for _, k := range jobs.Kinds(jobs.Deps{}) {
		if k.Name != "sleep" {
			continue
		}
		for _, raw := range []string{
			`{"seconds": 2.5, "fail_times": 1}`,
			`{"seconds": 7200}`,
			`{"seconds": 1, "retries": 3}`,
		} {
			args, err := k.Parse(json.RawMessage(raw))
			if err != nil {
				fmt.Println("rejected:", err)
				continue
			}
			sleep := args.(jobs.SleepArgs)
			fmt.Printf("accepted: %s for %gs, failing %d time(s) first\n", sleep.Kind(), *sleep.Seconds, sleep.FailTimes)
		}
	}
	// Output:
	// accepted: sleep for 2.5s, failing 1 time(s) first
	// rejected: seconds: must be between 0 and 3600
	// rejected: retries: unknown field
}
