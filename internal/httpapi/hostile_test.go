package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// hostileCase is one request that the API must refuse with a problem+json
// answer, writing nothing.
type hostileCase struct {
	name    string
	method  string
	path    string
	body    string
	header  [][2]string // added in order, so a header can repeat
	noJSON  bool        // send no Content-Type: application/json
	status  int
	detail  string
	fields  map[string]string
	maxBody int // an upper bound on the answer's size, where echoing matters
}

// TestHostileInput sends every sloppy or hostile input found by trying the
// API as a new user and an attacker would (issue 8): each gets its own
// status with a problem+json body a person can act on, and none writes a
// row.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	// A task the control routes can name; created before the cases, so the
	// row count after them must be exactly one.
	r := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop"}`)
	require.Equal(t, http.StatusAccepted, r.status)
	id := decodeTask(t, r).ID
	taskPath := fmt.Sprintf("/v1/tasks/%d", id)

	utf8Msg := `must be valid UTF-8 text: invalid UTF-8 or an unpaired surrogate escape (\ud800-\udfff) is not allowed`
	hugeKind := strings.Repeat("k", 1<<20-100)

	cases := []hostileCase{
		// Different idempotency keys must not collapse onto one task.
		{name: "KeyLoneHighSurrogate", body: `{"kind": "noop", "idempotency_key": "\ud800"}`, status: 422, detail: "idempotency_key", fields: map[string]string{"idempotency_key": utf8Msg}},
		{name: "KeyLoneLowSurrogate", body: `{"kind": "noop", "idempotency_key": "\udfff"}`, status: 422, detail: "idempotency_key", fields: map[string]string{"idempotency_key": utf8Msg}},
		{name: "KeyRawInvalidUTF8", body: "{\"kind\": \"noop\", \"idempotency_key\": \"\xfe\"}", status: 422, detail: "idempotency_key", fields: map[string]string{"idempotency_key": utf8Msg}},
		{name: "KeyHeaderInvalidUTF8", body: `{"kind": "noop"}`, header: [][2]string{{"Idempotency-Key", "\xfe"}}, status: 422, detail: "idempotency_key: must be valid UTF-8"},

		// Strict means strict: names match exactly, each once.
		{name: "CaseVariantFields", body: `{"KIND": "noop", "Max_Attempts": 3}`, status: 422, detail: "unknown field", fields: map[string]string{
			"KIND":         `unknown field (names are case-sensitive: did you mean "kind"?)`,
			"Max_Attempts": `unknown field (names are case-sensitive: did you mean "max_attempts"?)`,
			"kind":         "is required; known kinds: http, noop, sleep",
		}},
		{name: "CaseVariantArgs", body: `{"kind": "sleep", "args": {"SECONDS": 0.01}}`, status: 422, detail: "args.SECONDS", fields: map[string]string{
			"args.SECONDS": `unknown field (names are case-sensitive: did you mean "seconds"?)`,
			"args.seconds": "is required",
		}},
		{name: "DuplicateKind", body: `{"kind": "sleep", "kind": "noop"}`, status: 400, detail: `field "kind" is given twice`},
		{name: "DuplicateArg", body: `{"kind": "sleep", "args": {"seconds": 1, "seconds": 2}}`, status: 400, detail: `field "args.seconds" is given twice`},

		// Query parameters: malformed, repeated or unknown ones are named.
		{name: "AfterMalformed", method: "GET", path: "/v1/tasks?after=%%%", status: 400, detail: `query parameter "after": its value "%%%" is not valid percent-encoding`},
		{name: "LimitMalformed", method: "GET", path: "/v1/tasks?limit=%%%", status: 400, detail: `query parameter "limit"`},
		{name: "StateTwice", method: "GET", path: "/v1/tasks?state=cancelled&state=completed", status: 400, detail: `query parameter "state" is given more than once`},
		{name: "LimitTwice", method: "GET", path: "/v1/tasks?limit=1&limit=100", status: 400, detail: `query parameter "limit" is given more than once`},
		{name: "UnknownQueryParameter", method: "GET", path: "/v1/tasks?sort=asc", status: 400, detail: `unknown query parameter "sort": this endpoint takes state, kind, limit, after`},
		{name: "QueryOnGet", method: "GET", path: taskPath + "?x=1", status: 400, detail: `unknown query parameter "x": this endpoint takes wait, token`},
		{name: "EmptyAfter", method: "GET", path: "/v1/tasks?after=", status: 400, detail: "after is not a valid cursor"},

		// Idempotency-Key header: one, not blank.
		{name: "TwoKeyHeaders", body: `{"kind": "noop"}`, header: [][2]string{{"Idempotency-Key", "a"}, {"Idempotency-Key", "b"}}, status: 400, detail: "Idempotency-Key header is given more than once"},
		{name: "BlankKeyHeader", body: `{"kind": "noop"}`, header: [][2]string{{"Idempotency-Key", "   "}}, status: 422, detail: "Idempotency-Key header is empty"},
		{name: "BlankBodyKey", body: `{"kind": "noop", "idempotency_key": "   "}`, status: 422, detail: "idempotency_key: must not be only whitespace"},

		// Unclean paths get a problem+json 404, never a redirect.
		{name: "DoubleSlash", method: "GET", path: "/v1//tasks", status: 404, detail: "not a canonical path"},
		{name: "DotDot", method: "GET", path: "/v1/tasks/../tasks", status: 404, detail: "not a canonical path"},
		{name: "TrailingSlash", method: "GET", path: "/v1/tasks/", status: 404, detail: "no such endpoint"},
		{name: "V1Alone", method: "GET", path: "/v1", status: 404, detail: "no such endpoint"},
		{name: "PostToHealthz", method: "POST", path: "/healthz", status: 405, detail: "use GET, HEAD"},
		// A method is any token a client sends: the answer echoes 32 bytes.
		{name: "HugeMethodNoRoute", method: strings.Repeat("M", 20000), path: "/nothing", status: 404, detail: "no such endpoint: " + strings.Repeat("M", 32) + "… /nothing", maxBody: 4096},
		{name: "HugeMethodKnownPath", method: strings.Repeat("M", 20000), path: "/healthz", status: 405, detail: strings.Repeat("M", 32) + "… /healthz is not supported", maxBody: 4096},
		{name: "DeleteReadyz", method: "DELETE", path: "/readyz", status: 405, detail: "use GET, HEAD"},

		// Times: RFC 3339 offsets stop at ±23:59.
		{name: "OffsetBeyond23", body: `{"kind": "noop", "run_at": "2030-01-01T00:00:00+24:00"}`, status: 422, detail: "offset +24:00 is out of range"},

		// Numbers and types: clear words, every field at once, full paths.
		{name: "HugeNumber", body: `{"kind": "sleep", "args": {"seconds": 1e999}}`, status: 422, fields: map[string]string{"args.seconds": "1e999 is out of range for a number"}},
		{name: "FractionalPriority", body: `{"kind": "noop", "priority": 1.5}`, status: 422, fields: map[string]string{"priority": "must be an integer, not 1.5"}},
		{name: "EveryTypeErrorAtOnce", body: `{"kind": "sleep", "priority": "1", "max_attempts": true, "args": {"seconds": "1", "fail_times": "x"}}`, status: 422, fields: map[string]string{
			"priority":        "must be an integer, not a string",
			"max_attempts":    "must be an integer, not a boolean",
			"args.seconds":    "must be a number, not a string",
			"args.fail_times": "must be an integer, not a string",
		}},
		{name: "RangeAndTypeAtOnce", body: `{"kind": "sleep", "priority": 9, "args": {"seconds": 7200, "fail_times": "x"}}`, status: 422, fields: map[string]string{
			"priority":        "must be between 1 (highest) and 4",
			"args.seconds":    "must be between 0 and 3600",
			"args.fail_times": "must be an integer, not a string",
		}},
		{name: "HugeUnknownKind", body: `{"kind": "` + hugeKind + `"}`, status: 422, detail: "unknown kind", maxBody: 4096},

		// Bodies a browser can send cross-site without a preflight.
		{name: "TextPlainBody", body: `{"kind": "noop"}`, noJSON: true, header: [][2]string{{"Content-Type", "text/plain"}}, status: 415, detail: "Content-Type: application/json"},
		{name: "FormBody", body: `kind=noop`, noJSON: true, header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}}, status: 415, detail: "Content-Type: application/json"},
		{name: "NoContentType", body: `{"kind": "noop"}`, noJSON: true, status: 415, detail: "Content-Type: application/json"},
		{name: "OtherCharset", body: `{"kind": "noop"}`, noJSON: true, header: [][2]string{{"Content-Type", "application/json; charset=latin1"}}, status: 415, detail: "Content-Type: application/json"},
		{name: "GzipBody", body: `{"kind": "noop"}`, header: [][2]string{{"Content-Encoding", "gzip"}}, status: 415, detail: `Content-Encoding "gzip" is not supported`},
		{name: "ChainedEncoding", body: `{"kind": "noop"}`, header: [][2]string{{"Content-Encoding", "identity, br"}}, status: 415, detail: `Content-Encoding "br" is not supported`},
		{name: "NULInArgs", body: `{"kind": "http", "args": {"url": "https://example.com/", "body": "a\u0000b"}}`, status: 422, fields: map[string]string{"args": `must not contain the character U+0000 ("\u0000"), which Postgres cannot store in JSON; encode binary data, as base64 say`}},
		{name: "CrossSiteCancel", method: "POST", path: taskPath + "/cancel", header: [][2]string{{"Sec-Fetch-Site", "cross-site"}}, status: 403, detail: "cross-origin requests"},
		{name: "ForeignOriginCreate", body: `{"kind": "noop"}`, header: [][2]string{{"Origin", "https://evil.example"}}, status: 403, detail: "cross-origin requests"},
		{name: "FieldsOnCancel", method: "POST", path: taskPath + "/cancel", body: `{"force": true}`, status: 422, fields: map[string]string{"force": "unknown field"}},

		// Found by a tester following the README (2026-12-07).
		// A field given empty is refused, as SQL refuses it; leaving it
		// out (or null) is what means "the default".
		{name: "EmptyBodyKey", body: `{"kind": "noop", "idempotency_key": ""}`, status: 422, fields: map[string]string{"idempotency_key": "must not be empty; leave it out for no key"}},
		{name: "EmptyBodyKeyAndHeader", body: `{"kind": "noop", "idempotency_key": ""}`, header: [][2]string{{"Idempotency-Key", "k1"}}, status: 422, detail: "differ"},
		{name: "EmptyQueue", body: `{"kind": "noop", "queue": ""}`, status: 422, fields: map[string]string{"queue": "must not be empty; leave it out for the default queue"}},
		{name: "ZeroPriorityAndAttempts", body: `{"kind": "noop", "priority": 0, "max_attempts": 0}`, status: 422, fields: map[string]string{
			"priority":     "must be between 1 (highest) and 4; leave it out for 1",
			"max_attempts": "must be between 1 and 1000; leave it out for 25",
		}},
		{name: "EmptyCallbackURL", body: `{"kind": "noop", "callback_url": ""}`, status: 422, fields: map[string]string{"callback_url": "must not be empty; leave it out for no callback"}},
		// A number a float would round to an integer is not one.
		{name: "PriorityRoundsToOne", body: `{"kind": "noop", "priority": 1.0000000000000001}`, status: 422, fields: map[string]string{"priority": "must be an integer, not 1.0000000000000001"}},
		// A body that is not an object, null included, is a 400.
		{name: "NullBody", body: `null`, status: 400, detail: "the body must be an object, not null"},
		{name: "NullBatch", path: "/v1/tasks/batch", method: "POST", body: `null`, status: 400, detail: "the body must be an object, not null"},
		{name: "NullOnCancel", method: "POST", path: taskPath + "/cancel", body: `null`, status: 400, detail: "send no body, or {}"},
		{name: "ArrayOnRetry", method: "POST", path: taskPath + "/retry", body: `[]`, status: 400, detail: "the body must be an object, not an array"},
		// Echoes are cut at 64 bytes, names of unknown fields included.
		{name: "LongUnknownField", body: `{"kind": "noop", "` + strings.Repeat("f", 5000) + `": 1}`, status: 422, fields: map[string]string{strings.Repeat("f", 64) + "…": "unknown field"}, maxBody: 1024},
		{name: "LongUnknownKind", body: `{"kind": "` + strings.Repeat("k", 200) + `"}`, status: 422, fields: map[string]string{"kind": `unknown kind "` + strings.Repeat("k", 64) + `…"; known kinds: http, noop, sleep`}},
		{name: "LongWait", method: "GET", path: taskPath + "?wait=" + strings.Repeat("7", 3000), status: 400, fields: map[string]string{"wait": "must be a duration from 0s to 1m0s"}, maxBody: 1024},
		{name: "LongUnknownParameter", method: "GET", path: "/v1/tasks?" + strings.Repeat("p", 3000) + "=1", status: 400, fields: map[string]string{strings.Repeat("p", 64) + "…": "unknown query parameter"}, maxBody: 1024},
		// Query parameter errors name the parameter in errors too.
		{name: "LimitZero", method: "GET", path: "/v1/tasks?limit=0", status: 400, fields: map[string]string{"limit": "must be an integer from 1 to 100"}},
		{name: "LimitLeadingZero", method: "GET", path: "/v1/tasks?limit=05", status: 400, fields: map[string]string{"limit": "must be an integer from 1 to 100"}},
		{name: "StateBogus", method: "GET", path: "/v1/tasks?state=bogus", status: 400, fields: map[string]string{"state": "must be one of: available, scheduled, pending, running, retryable, completed, discarded, cancelled"}},
		{name: "AfterBogus", method: "GET", path: "/v1/tasks?after=zzz!", status: 400, fields: map[string]string{"after": "is not a valid cursor"}},
		{name: "UnknownParameterNamed", method: "GET", path: "/v1/tasks?foo=1", status: 400, fields: map[string]string{"foo": "unknown query parameter"}},
		{name: "CursorLeadingZero", method: "GET", path: "/v1/tasks?after=dDA1", status: 400, fields: map[string]string{"after": "is not a valid cursor"}},
		// A task has one path: no sign, no leading zeros.
		{name: "IDLeadingZero", method: "GET", path: fmt.Sprintf("/v1/tasks/0%d", id), status: 400, detail: "without sign or leading zeros"},
		{name: "IDPlusSign", method: "GET", path: fmt.Sprintf("/v1/tasks/+%d", id), status: 400, detail: "without sign or leading zeros"},
		{name: "IDOutOfRange", method: "GET", path: "/v1/tasks/99999999999999999999", status: 400, detail: "is out of range; ids are positive integers up to 9223372036854775807"},
		{name: "IDNegativeOutOfRange", method: "GET", path: "/v1/tasks/-99999999999999999999", status: 400, detail: "without sign or leading zeros"},
		{name: "IDLeadingZeroOutOfRange", method: "GET", path: "/v1/tasks/099999999999999999999", status: 400, detail: "without sign or leading zeros"},
	}

	t.Run("Cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				r := bundle.send(t, tc)
				p := requireProblem(t, r, tc.status, tc.detail)
				if tc.fields != nil {
					require.Equal(t, tc.fields, p.Errors)
				}
				if tc.maxBody > 0 {
					require.LessOrEqual(t, len(r.body), tc.maxBody, "the answer echoes the input back")
				}
			})
		}
	})
	require.Equal(t, 2, countRows(t, bundle.pool), "a rejected request writes nothing (one task: one row in tasks, one in river_job)")

	var state string
	require.NoError(t, bundle.pool.QueryRow(t.Context(), "SELECT state FROM tasks WHERE id = $1", id).Scan(&state))
	require.Equal(t, "available", state, "the refused cross-site cancel changed nothing")
}

// send makes tc's request.
func (b *testBundle) send(t *testing.T, tc hostileCase) *response {
	t.Helper()
	method, path := tc.method, tc.path
	if method == "" {
		method, path = http.MethodPost, "/v1/tasks"
	}
	// Paths such as /v1//tasks must reach the server as written: the
	// request line is written by hand, not by a client that cleans it.
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", b.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, b.srv.Listener.Addr(), len(tc.body))
	if !tc.noJSON {
		req.WriteString("Content-Type: application/json\r\n")
	}
	for _, h := range tc.header {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
	}
	req.WriteString("\r\n")
	req.WriteString(tc.body)
	_, err = io.WriteString(conn, req.String())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// TestHostileInputAccepted: inputs that once were refused but are valid.
func TestHostileInputAccepted(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	// A leap second is valid RFC 3339: the instant after 23:59:59.
	r := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "run_at": "2030-12-31T23:59:60Z"}`)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	got := decodeTask(t, r)
	require.True(t, got.ScheduledAt.Equal(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)), "scheduled at %s", got.ScheduledAt)

	// JSON has one number type: 1.0 is the integer 1.
	r = bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "priority": 2.0}`)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	require.Equal(t, 2, decodeTask(t, r).Priority)

	// Empty filters mean no filter; an empty body or {} on cancel is fine.
	r = bundle.do(t, http.MethodGet, "/v1/tasks?state=&kind=", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r = bundle.do(t, http.MethodPost, fmt.Sprintf("/v1/tasks/%d/cancel", got.ID), "{}")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, "cancelled", decodeTask(t, r).State)
}

// TestRetryAtAttemptLimit: River counts attempts in a smallint; a task that
// used them all gets a 409 that says so, not Postgres's "smallint out of
// range" as a text error.
func TestRetryAtAttemptLimit(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	r := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop"}`)
	require.Equal(t, http.StatusAccepted, r.status)
	id := decodeTask(t, r).ID
	_, err := bundle.pool.Exec(t.Context(), `UPDATE river_job SET state = 'discarded', attempt = 32767, max_attempts = 32767,
		attempted_at = now(), finalized_at = now() WHERE id = $1`, id)
	require.NoError(t, err)

	r = bundle.do(t, http.MethodPost, fmt.Sprintf("/v1/tasks/%d/retry", id), "")
	requireProblem(t, r, http.StatusConflict, "as many attempts as River can count (32767)")
	var state string
	require.NoError(t, bundle.pool.QueryRow(t.Context(), "SELECT state FROM river_job WHERE id = $1", id).Scan(&state))
	require.Equal(t, "discarded", state, "the refused retry changed nothing")
}

// recordingHandler keeps every log record, for tests that check what the
// server logged.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) messages(minLevel slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		if r.Level >= minLevel {
			out = append(out, r.Message)
		}
	}
	return out
}

// TestSlowClientIs408: a body that arrives after the request timeout is the
// client's fault (408, the connection closed), not a database outage: no
// 503 and no database warning, and the row is not written.
func TestSlowClientIs408(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	logs := &recordingHandler{}
	kinds := jobs.Kinds(jobs.Deps{})
	client, err := river.NewClient(riverpgxv5.New(bundle.pool), &river.Config{})
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewServer(slog.New(logs), task.NewService(bundle.pool, client, kinds, nil), &httpapi.ServerOpts{RequestTimeout: 300 * time.Millisecond}))
	t.Cleanup(srv.Close)

	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	body := `{"kind": "noop"}`
	_, err = fmt.Fprintf(conn, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:5])
	require.NoError(t, err)
	// The rest of the body never comes: the answer is the proof that the
	// server stopped waiting. A hang fails on the read deadline instead.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	reader := bufio.NewReader(conn)
	resp, err := http.ReadResponse(reader, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	requireProblem(t, &response{status: resp.StatusCode, header: resp.Header, body: raw}, http.StatusRequestTimeout, "did not arrive within 300ms")
	require.True(t, resp.Close, "the answer says the connection closes")
	// And it does: the server hangs up rather than wait for the rest of the
	// body (the read deadline above fails the test if it waits).
	_, err = reader.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closes the connection after a 408")
	require.Empty(t, logs.messages(slog.LevelWarn), "a slow client is not a server problem")
	require.Zero(t, countRows(t, bundle.pool))
}

// TestNetHTTPAnswers documents what net/http answers before any handler
// runs (README, "Errors"): these are 4xx in text/plain, not problem+json,
// and reach no handler, so they write nothing.
func TestNetHTTPAnswers(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	raw := func(t *testing.T, request string) int {
		t.Helper()
		conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", bundle.srv.Listener.Addr().String())
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, request)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		return resp.StatusCode
	}
	body := `{"kind": "noop"}`
	for name, tc := range map[string]struct {
		request string
		status  int
	}{
		"BadRequestLine":     {"GARBAGE\r\n\r\n", http.StatusBadRequest},
		"ControlByteHeader":  {"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", http.StatusBadRequest},
		"TwoContentLengths":  {fmt.Sprintf("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nContent-Length: 3\r\n\r\n%s", len(body), body), http.StatusBadRequest},
		"MissingHost":        {"GET /v1/tasks HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		"HeaderOver1MiB":     {"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20+4096) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		"HTTP10WithoutHost":  {"GET /healthz HTTP/1.0\r\n\r\n", http.StatusOK},
		"AbsoluteFormTarget": {"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.status, raw(t, tc.request))
		})
	}
}
