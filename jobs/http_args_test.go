package jobs_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/jobs"
)

func TestHTTPArgsParse(t *testing.T) {
	t.Parallel()

	kind := kindByName(t, "http")

	t.Run("Accepted", func(t *testing.T) {
		t.Parallel()
		for _, raw := range []string{
			`{"url": "https://example.com/hook"}`,
			`{"url": "http://hooks.example.com:8080/a?b=c", "method": "PUT", "headers": {"Authorization": "Bearer x", "X-Trace": "1"}, "body": "hi", "timeout": 2.5}`,
			// The shape of a completion callback, as internal/task inserts it.
			`{"url": "https://app.example.com/callback", "method": "POST", "headers": {"Content-Type": "application/json"}, "body": "{\"id\":1,\"state\":\"completed\"}"}`,
			`{"url": "https://example.com", "method": "GET", "headers": null, "timeout": 300}`,
			`{"url": "https://[2001:db8::1]/x", "method": "DELETE", "headers": {}}`,
		} {
			args, err := kind.Parse(json.RawMessage(raw))
			require.NoError(t, err, raw)
			require.IsType(t, jobs.HTTPArgs{}, args)
		}
	})

	t.Run("Rejected", func(t *testing.T) {
		t.Parallel()
		for raw, want := range map[string]string{
			`{}`:                                                                          "url: is required",
			`{"url": "ftp://example.com/x"}`:                                              "url: must be an absolute http:// or https:// URL",
			`{"url": "/relative"}`:                                                        "url: must be an absolute http:// or https:// URL",
			`{"url": "https://"}`:                                                         "url: must name a host",
			`{"url": "https://u:p@example.com"}`:                                          "url: must not contain credentials",
			`{"url": "https://example.com:0/"}`:                                           "url: has an invalid port",
			`{"url": "https://example.com:99999"}`:                                        "url: ",
			`{"url": "https://example.com", "retries": 3}`:                                "retries: unknown field",
			`{"URL": "https://example.com"}`:                                              `URL: unknown field (names are case-sensitive: did you mean "url"?)`,
			`{"url": "https://a.example", "url": "https://b.example"}`:                    `field "url" is given twice`,
			`{"url": "https://example.com", "method": "post"}`:                            "method: must be one of GET, HEAD, POST",
			`{"url": "https://example.com", "method": "TRACE"}`:                           "method: must be one of",
			`{"url": "https://example.com", "headers": {"Connection": "close"}}`:          "headers.Connection: cannot be set: it is hop-by-hop",
			`{"url": "https://example.com", "headers": {"Transfer-Encoding": "chunked"}}`: "headers.Transfer-Encoding: cannot be set",
			`{"url": "https://example.com", "headers": {"Host": "internal"}}`:             "headers.Host: cannot be set: it is set from the URL",
			`{"url": "https://example.com", "headers": {"webhook-id": "x"}}`:              "headers.webhook-id: cannot be set: it is set by Handoff's signature",
			`{"url": "https://example.com", "headers": {"Webhook-Signature": "v1,x"}}`:    "headers.Webhook-Signature: cannot be set",
			`{"url": "https://example.com", "headers": {"Bad Name": "x"}}`:                "headers.Bad Name: is not a valid header name",
			`{"url": "https://example.com", "headers": {"X-A": "a\r\nX-Injected: 1"}}`:    "headers.X-A: value must not contain control characters",
			`{"url": "https://example.com", "headers": {"X-A": "1", "x-a": "2"}}`:         "headers.x-a: is given twice",
			`{"url": "https://example.com", "headers": {"X-A": 1}}`:                       "headers.X-A: must be a string, not a number",
			`{"url": "https://example.com", "headers": ["X-A"]}`:                          "headers: must be an object, not an array",
			`{"url": "https://example.com", "method": "GET", "body": "x"}`:                "body: GET takes no body",
			`{"url": "https://example.com", "timeout": 0}`:                                "timeout: must be a number of seconds above 0 and at most 300",
			`{"url": "https://example.com", "timeout": 301}`:                              "timeout: must be",
			`{"url": "https://example.com", "timeout": "30s"}`:                            "timeout: must be a number, not a string",
			`{"url": "https://example.com", "body": {"a": 1}}`:                            "body: must be a string, not an object",
			`{"url": "https://example.com"} {}`:                                           "send exactly one JSON value",
			`[]`:                                                                          "must be an object, not an array",
		} {
			_, err := kind.Parse(json.RawMessage(raw))
			var argsErr jobs.ArgsError
			require.ErrorAs(t, err, &argsErr, raw)
			require.Contains(t, err.Error(), want, raw)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		t.Parallel()
		tooLong := jobs.HTTPArgs{URL: "https://example.com/" + strings.Repeat("a", jobs.HTTPMaxURLBytes)}
		require.ErrorContains(t, tooLong.Validate(), "url: must be at most")
		bigBody := jobs.HTTPArgs{URL: "https://example.com", Body: strings.Repeat("x", jobs.HTTPMaxBodyBytes+1)}
		require.ErrorContains(t, bigBody.Validate(), "body: must be at most")
		require.NoError(t, jobs.HTTPArgs{URL: "https://example.com", Body: strings.Repeat("x", jobs.HTTPMaxBodyBytes)}.Validate())
		many := jobs.HTTPArgs{URL: "https://example.com", Headers: map[string]string{}}
		for i := range jobs.HTTPMaxHeaders + 1 {
			many.Headers["X-H"+strings.Repeat("i", i)] = "v"
		}
		require.ErrorContains(t, many.Validate(), "headers: at most 50 headers")
		big := jobs.HTTPArgs{URL: "https://example.com", Headers: map[string]string{"X-Big": strings.Repeat("v", jobs.HTTPMaxHeaderBytes)}}
		require.ErrorContains(t, big.Validate(), "headers: names and values together must be at most")
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		// What River stores decodes back to the same args (River decodes
		// them with json.Unmarshal before each attempt).
		timeout := 1.5
		args := jobs.HTTPArgs{URL: "https://example.com", Method: "PATCH", Headers: map[string]string{"X-A": "1"}, Body: "b", Timeout: &timeout}
		raw, err := json.Marshal(args)
		require.NoError(t, err)
		var back jobs.HTTPArgs
		require.NoError(t, json.Unmarshal(raw, &back))
		require.Equal(t, args, back)
	})
}

// FuzzHTTPArgsParse: whatever the input, the http kind's Parse either
// accepts args that survive their own encoding or answers an ArgsError
// (never a panic, never another error type).
func FuzzHTTPArgsParse(f *testing.F) {
	for _, seed := range []string{
		`{"url": "https://example.com"}`, `{"url": "http://[::1]:80/x", "method": "GET"}`,
		`{"url": "https://e.com", "headers": {"A": "1", "a": "2"}}`, `{"url": "https://e.com", "headers": {"A": 1}}`,
		`{"url": "https://e.com", "url": "https://f.com"}`, `{"URL": "x"}`, `{"url": "https://e.com", "timeout": 1e-9}`,
		`{"url": "https://e.com", "headers": {"X": "\u0000"}}`, `{"url": "https://e.com", "headers": null, "body": ""}`,
		`{"url": "https://e.com", "headers": {`, `{"url": "https://e.com"} x`, `{"headers": [1, 2]}`,
	} {
		f.Add(seed)
	}
	kind := jobs.Kinds(jobs.Deps{})[0]
	for _, k := range jobs.Kinds(jobs.Deps{}) {
		if k.Name == "http" {
			kind = k
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		args, err := kind.Parse(json.RawMessage(raw))
		if err != nil {
			var argsErr jobs.ArgsError
			if !errors.As(err, &argsErr) || len(argsErr) == 0 {
				t.Fatalf("error %T (%v) is not a non-empty ArgsError", err, err)
			}
			return
		}
		encoded, err := json.Marshal(args)
		if err != nil {
			t.Fatalf("accepted args do not encode: %v", err)
		}
		again, err := kind.Parse(encoded)
		if err != nil {
			t.Fatalf("accepted %q but rejects its own encoding %s: %v", raw, encoded, err)
		}
		if !reflect.DeepEqual(args, again) {
			t.Fatalf("%q: %+v != %+v after a round trip", raw, args, again)
		}
	})
}
