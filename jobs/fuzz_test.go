package jobs_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/handoff/handoff/jobs"
)

// FuzzKindParse feeds arbitrary args to every kind: parsing must never
// panic, must fail only with an ArgsError (the API's 422), and what it
// accepts must validate and survive the JSON round trip River makes.
func FuzzKindParse(f *testing.F) {
	for _, seed := range []string{
		`{}`, ``, `null`, `[]`, `1`, `{"seconds": 1}`, `{"seconds": 3600, "fail_times": 100}`,
		`{"seconds": -0}`, `{"seconds": 1e308}`, `{"seconds": "1"}`, `{"seconds": 1, "x": 2}`,
		`{"seconds": 1} trailing`, `{"fail_times": 1.5, "seconds": 0}`, `{"seconds": null}`,
	} {
		f.Add(seed)
	}
	kinds := jobs.Kinds(jobs.Deps{})
	f.Fuzz(func(t *testing.T, raw string) {
		for _, k := range kinds {
			args, err := k.Parse(json.RawMessage(raw))
			if err != nil {
				var argsErr jobs.ArgsError
				if !errors.As(err, &argsErr) || len(argsErr) == 0 {
					t.Fatalf("%s: error %T (%v) is not a non-empty ArgsError", k.Name, err, err)
				}
				continue
			}
			encoded, err := json.Marshal(args)
			if err != nil {
				t.Fatalf("%s: accepted args do not encode: %v", k.Name, err)
			}
			if _, err := k.Parse(encoded); err != nil {
				t.Fatalf("%s: accepted %q but rejects its own encoding %s: %v", k.Name, raw, encoded, err)
			}
		}
	})
}
