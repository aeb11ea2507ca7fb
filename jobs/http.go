package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"golang.org/x/net/idna"

	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/safehttp"
	"github.com/handoff/handoff/internal/webhook"
)

// Limits of the http kind. Each is documented in docs/http-kind.md.
const (
	// HTTPMaxURLBytes bounds args.url.
	HTTPMaxURLBytes = 8 << 10
	// HTTPMaxBodyBytes bounds args.body. Through the API a request is at
	// most 1 MiB anyway; the larger bound leaves room for callbacks, whose
	// body is a whole task object.
	HTTPMaxBodyBytes = 4 << 20
	// HTTPMaxHeaders bounds the number of args.headers.
	HTTPMaxHeaders = 50
	// HTTPMaxHeaderBytes bounds the names and values of args.headers
	// together.
	HTTPMaxHeaderBytes = 16 << 10
	// HTTPDefaultTimeout is one attempt's timeout when args.timeout is not
	// given; HTTPMaxTimeout is the largest args.timeout.
	HTTPDefaultTimeout = 30 * time.Second
	HTTPMaxTimeout     = 5 * time.Minute
	// HTTPMaxResponseBodyBytes is how much of a response body the result
	// keeps; the rest is not read, and the result says "truncated": true.
	HTTPMaxResponseBodyBytes = 64 << 10
	// HTTPMaxRedirects is how many redirects one attempt follows; the
	// response after the last is the attempt's answer.
	HTTPMaxRedirects = 5
	// HTTPMaxRetryAfter caps the wait a 429 or 503 asks for with
	// Retry-After; a longer one waits this long.
	HTTPMaxRetryAfter = time.Hour
	// HTTPMaxSnoozes is how many Retry-After waits a task may take without
	// spending an attempt; after that a 429 or 503 counts as a failed
	// attempt, so that a receiver answering 429 forever cannot keep a task
	// alive forever.
	HTTPMaxSnoozes = 50
	// httpErrorExcerptBytes is how much of a failed response's body its
	// attempt error quotes.
	httpErrorExcerptBytes = 512
)

// httpMethods are the methods args.method may name; the default is POST.
var httpMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// httpForbiddenHeaders are header names args.headers may not set: the
// transport owns the connection-level ones, and the Standard Webhooks ones
// are Handoff's signature. Lower case.
var httpForbiddenHeaders = map[string]string{
	"connection":            "is hop-by-hop",
	"keep-alive":            "is hop-by-hop",
	"proxy-authenticate":    "is hop-by-hop",
	"proxy-authorization":   "is hop-by-hop",
	"proxy-connection":      "is hop-by-hop",
	"te":                    "is hop-by-hop",
	"trailer":               "is hop-by-hop",
	"transfer-encoding":     "is hop-by-hop",
	"upgrade":               "is hop-by-hop",
	"host":                  "is set from the URL",
	"content-length":        "is set from the body",
	webhook.HeaderID:        "is set by Handoff's signature",
	webhook.HeaderTimestamp: "is set by Handoff's signature",
	webhook.HeaderSignature: "is set by Handoff's signature",
	"handoff-progress-url":  "is set by Handoff for progress reports",
}

// HTTPProgressHeader carries the URL where an http task's receiver may
// report the attempt's progress (docs/http-kind.md, "Progress").
const HTTPProgressHeader = "Handoff-Progress-URL"

// HTTPArgs are the args of kind "http": one HTTP request, sent until it
// gets an answer that settles it, signed per Standard Webhooks. See
// docs/http-kind.md.
type HTTPArgs struct {
	// URL is the absolute http or https URL to call.
	URL string `json:"url" handoff:"required"`
	// Method is GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS; empty
	// means POST.
	Method string `json:"method,omitempty"`
	// Headers are extra request headers, one value each.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the request body, sent byte for byte; GET and HEAD take none.
	Body string `json:"body,omitempty"`
	// Timeout is one attempt's timeout in seconds, at most
	// HTTPMaxTimeout; nil means HTTPDefaultTimeout.
	Timeout *float64 `json:"timeout,omitempty"`
}

// Kind returns "http".
func (HTTPArgs) Kind() string { return "http" }

// Validate checks the URL, method, headers, body and timeout.
func (a HTTPArgs) Validate() error {
	errs := ArgsError{}
	if msg := CheckHTTPURL(a.URL); msg != "" {
		errs["url"] = msg
	}
	if a.Method != "" && !isHTTPMethod(a.Method) {
		errs["method"] = "must be one of " + strings.Join(httpMethods, ", ") + " (upper case)"
	}
	if len(a.Headers) > HTTPMaxHeaders {
		errs["headers"] = fmt.Sprintf("at most %d headers", HTTPMaxHeaders)
	}
	size := 0
	byLower := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(a.Headers)) {
		value := a.Headers[name]
		size += len(name) + len(value)
		if msg := validateHeader(name, value); msg != "" {
			errs["headers."+name] = msg
		}
		// Header names are case-insensitive: two spellings of one name
		// would be sent as one header with two values.
		if first, ok := byLower[strings.ToLower(name)]; ok {
			errs["headers."+name] = fmt.Sprintf("is given twice (as %q too; header names are case-insensitive)", first)
		}
		byLower[strings.ToLower(name)] = name
	}
	if size > HTTPMaxHeaderBytes {
		errs["headers"] = fmt.Sprintf("names and values together must be at most %d bytes", HTTPMaxHeaderBytes)
	}
	switch {
	case len(a.Body) > HTTPMaxBodyBytes:
		errs["body"] = fmt.Sprintf("must be at most %d bytes", HTTPMaxBodyBytes)
	case a.Body != "" && (a.method() == http.MethodGet || a.method() == http.MethodHead):
		errs["body"] = a.method() + " takes no body"
	}
	if a.Timeout != nil {
		if t := *a.Timeout; math.IsNaN(t) || t <= 0 || t > HTTPMaxTimeout.Seconds() {
			errs["timeout"] = fmt.Sprintf("must be a number of seconds above 0 and at most %g", HTTPMaxTimeout.Seconds())
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// CheckHTTPURL says what is wrong with raw as the http kind's url, "" when
// nothing is: an absolute http or https URL with a host, no credentials and
// a port from 1 to 65535 if any, at most HTTPMaxURLBytes. A task's
// callback_url must pass it too (internal/task), since its callback is an
// http task to that URL.
func CheckHTTPURL(raw string) string {
	switch {
	case raw == "":
		return "is required"
	case len(raw) > HTTPMaxURLBytes:
		return fmt.Sprintf("must be at most %d bytes", HTTPMaxURLBytes)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute http:// or https:// URL"
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return "must name a host, as in https://example.com/path"
	case u.User != nil:
		return "must not contain credentials: send them in a header (e.g. Authorization)"
	}
	if host := u.Hostname(); !isASCII(host) {
		// What net/http does with a host that is not ASCII before it dials.
		if ascii, err := idna.Lookup.ToASCII(host); err != nil || ascii == "" || strings.HasPrefix(ascii, ".") {
			return "has a host name that is not a valid international domain name"
		}
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "has an invalid port"
		}
	}
	return ""
}

func validateHeader(name, value string) string {
	if !isToken(name) {
		return "is not a valid header name"
	}
	if why, ok := httpForbiddenHeaders[strings.ToLower(name)]; ok {
		return "cannot be set: it " + why
	}
	for i := range len(value) {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return "value must not contain control characters (CR, LF, NUL...)"
		}
	}
	return ""
}

// isToken reports whether s is an RFC 9110 token, as header names are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c >= 0x80 || c <= ' ' || strings.IndexByte("\"(),/:;<=>?@[\\]{}\x7f", c) >= 0 {
			return false
		}
	}
	return true
}

func isHTTPMethod(m string) bool {
	for _, known := range httpMethods {
		if m == known {
			return true
		}
	}
	return false
}

func (a HTTPArgs) method() string {
	if a.Method == "" {
		return http.MethodPost
	}
	return a.Method
}

func (a HTTPArgs) timeout() time.Duration {
	if a.Timeout == nil {
		return HTTPDefaultTimeout
	}
	return time.Duration(*a.Timeout * float64(time.Second))
}

// HTTPResult is the result of an http task, and the response recorded in
// the error of one discarded for its answer.
type HTTPResult struct {
	// Status is the response's status code.
	Status int `json:"status"`
	// Headers are the response headers, canonical names, several values
	// joined with ", ".
	Headers map[string]string `json:"headers"`
	// Body is the response body as text (bytes that are not UTF-8 become
	// U+FFFD), at most HTTPMaxResponseBodyBytes.
	Body string `json:"body"`
	// Truncated tells that the body was longer and was cut.
	Truncated bool `json:"truncated,omitempty"`
}

// HTTPDeps are the http kind's dependencies.
type HTTPDeps struct {
	// Transport sends its requests: safehttp.NewTransport with the
	// allow-list of HTTP_TASK_ALLOW. Nil means safehttp.NewTransport(nil),
	// which refuses every non-public address.
	Transport http.RoundTripper
	// Signer signs them (WEBHOOK_SECRET); nil sends them unsigned.
	Signer *webhook.Signer
	// DB is where a task that can never succeed is discarded: the pool.
	// Nil cancels such a task instead.
	DB Beginner
	// ProgressURLFunc returns the URL, valid for validFor, at which the
	// receiver may report the progress of this attempt; it is sent in the
	// Handoff-Progress-URL header. Nil sends no such header.
	ProgressURLFunc func(taskID int64, attempt int, validFor time.Duration) string
}

// Beginner starts a transaction: a *pgxpool.Pool, or a pgx.Tx (a
// savepoint) in tests.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// HTTPWorker works http tasks.
type HTTPWorker struct {
	river.WorkerDefaults[HTTPArgs]

	// Transport sends the requests. Nil means safehttp.NewTransport(nil),
	// made per request without keep-alive: it refuses every non-public
	// address.
	Transport http.RoundTripper
	// Signer signs each request; nil sends webhook-id and
	// webhook-timestamp without a signature.
	Signer *webhook.Signer
	// DB is where a task that can never succeed is discarded. Nil cancels
	// such a task instead, with the same error.
	DB Beginner
	// ProgressURLFunc, when set, gives the receiver a URL to report the
	// attempt's progress at (HTTPDeps.ProgressURLFunc).
	ProgressURLFunc func(taskID int64, attempt int, validFor time.Duration) string
	// Logger logs what the task's errors cannot say.
	Logger *slog.Logger
}

// Timeout is the request's timeout plus a margin to record the outcome.
func (w *HTTPWorker) Timeout(job *river.Job[HTTPArgs]) time.Duration {
	return job.Args.timeout() + 10*time.Second
}

// HTTPWebhookID is the webhook-id of the requests of task taskID, whose
// job carries metadata: the same on every attempt, so that a receiver can
// recognise a delivery it has seen. It is "task_<id>", except for a
// completion callback (riverseam.MetadataKeyCallbackOf), whose id names the
// task it reports on, then its own: "callback_<task>_<callback task>" (a
// task can report several outcomes, retried by River or an operator, even
// at one attempt). Neither the API nor handoff.enqueue lets a client make a
// task with such an id, and the id is signed, so a receiver that finds
// "callback_<id>_" before the body's task id knows the body is Handoff's
// report on that task, and not another tenant's http task whose body was
// made to look like one (every task is signed with the same
// WEBHOOK_SECRET).
func HTTPWebhookID(taskID int64, metadata []byte) string {
	var (
		m  map[string]json.RawMessage
		of *int64
	)
	if json.Unmarshal(metadata, &m) == nil && json.Unmarshal(m[riverseam.MetadataKeyCallbackOf], &of) == nil && of != nil {
		return "callback_" + strconv.FormatInt(*of, 10) + "_" + strconv.FormatInt(taskID, 10)
	}
	return "task_" + strconv.FormatInt(taskID, 10)
}

// httpPermanentError is a failure that no retry can change.
type httpPermanentError struct{ msg string }

func (e *httpPermanentError) Error() string { return e.msg }

// Work sends the request once and settles the attempt by the answer:
//   - 2xx completes the task with the response as its result;
//   - 429 or 503 with Retry-After snoozes (River's JobSnooze) for that long,
//     at most HTTPMaxRetryAfter, without spending an attempt (at most
//     HTTPMaxSnoozes times);
//   - 5xx, 408, 429, a timeout or a connection error fail the attempt: River
//     retries with backoff until max_attempts;
//   - any other answer (4xx, or a 3xx not followed) discards the task at
//     once, the response recorded in its error; so does a target the SSRF
//     guard refuses, and args that are not valid.
func (w *HTTPWorker) Work(ctx context.Context, job *river.Job[HTTPArgs]) error {
	args := job.Args
	if err := args.Validate(); err != nil {
		return w.discard(ctx, job, &httpPermanentError{msg: "not sent: invalid args: " + err.Error()}, nil)
	}
	timeout := args.timeout()
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	resp, err := w.send(reqCtx, job)
	if err != nil {
		var permanent *httpPermanentError
		switch {
		case ctx.Err() != nil:
			// Cancelled or the client stopping: River decides what that means.
			return fmt.Errorf("request interrupted: %w", ctx.Err())
		case safehttp.IsRefused(err):
			return w.discard(ctx, job, &httpPermanentError{msg: "not sent: " + refusal(err)}, nil)
		case errors.As(err, &permanent):
			return w.discard(ctx, job, permanent, nil)
		case reqCtx.Err() != nil:
			return fmt.Errorf("no response within the timeout of %s: %w", timeout, err)
		}
		return fmt.Errorf("request failed: %w", err)
	}
	defer resp.Body.Close()

	result, err := readResponse(resp)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("reading the response interrupted: %w", ctx.Err())
		}
		if reqCtx.Err() != nil {
			return fmt.Errorf("response body not read within the timeout of %s: %w", timeout, err)
		}
		return fmt.Errorf("HTTP %s: reading the response body failed: %w", resp.Status, err)
	}

	status := resp.StatusCode
	switch {
	case status >= 200 && status <= 299:
		return RecordResult(ctx, result)
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		if wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			if n := snoozes(job.Metadata); n < HTTPMaxSnoozes {
				return river.JobSnooze(wait)
			}
			return fmt.Errorf("%s; Retry-After ignored: the task already waited %d times without spending an attempt", statusError(result), HTTPMaxSnoozes)
		}
		return errors.New(statusError(result))
	case status >= 500 || status == http.StatusRequestTimeout:
		return errors.New(statusError(result))
	}
	why := "not retried: a 4xx answer means the request itself must change"
	if status < 400 {
		why = fmt.Sprintf("not retried: a %d answer is not followed (redirects are followed up to %d times, to http or https URLs only)", status, HTTPMaxRedirects)
	}
	return w.discard(ctx, job, &httpPermanentError{msg: fmt.Sprintf("HTTP %d %s, %s; response: %s", status, http.StatusText(status), why, mustJSON(result))}, &result)
}

// send signs and sends the request, following redirects up to
// HTTPMaxRedirects, each re-signed for the body it carries.
func (w *HTTPWorker) send(ctx context.Context, job *river.Job[HTTPArgs]) (*http.Response, error) {
	args := job.Args
	var body io.Reader
	if args.Body != "" {
		body = strings.NewReader(args.Body)
	}
	req, err := http.NewRequestWithContext(ctx, args.method(), args.URL, body)
	if err != nil {
		return nil, &httpPermanentError{msg: "not sent: " + err.Error()}
	}
	for name, value := range args.Headers {
		req.Header.Set(name, value)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Handoff")
	}
	if w.ProgressURLFunc != nil {
		// Good while the attempt may run, and a little after.
		req.Header.Set(HTTPProgressHeader, w.ProgressURLFunc(job.ID, job.Attempt, w.Timeout(job)+time.Minute))
	}
	id, at := HTTPWebhookID(job.ID, job.Metadata), time.Now()
	w.Signer.Sign(req.Header, id, at, []byte(args.Body))

	transport := w.Transport
	if transport == nil {
		// One transport per request: it must keep no connection open.
		guarded := safehttp.NewTransport(nil)
		guarded.DisableKeepAlives = true
		transport = guarded
	}
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			if len(via) > HTTPMaxRedirects {
				return http.ErrUseLastResponse
			}
			if next.URL.Scheme != "http" && next.URL.Scheme != "https" {
				return &httpPermanentError{msg: fmt.Sprintf("redirected to %s, which is not an http or https URL", next.URL.Redacted())}
			}
			// A 301, 302 or 303 turns the request into a GET without a
			// body: the signature covers what is sent.
			signed := []byte(args.Body)
			if next.Body == nil || next.Body == http.NoBody {
				signed = nil
			}
			w.Signer.Sign(next.Header, id, at, signed)
			return nil
		},
	}
	return client.Do(req)
}

// readResponse reads up to HTTPMaxResponseBodyBytes of the body.
func readResponse(resp *http.Response) (HTTPResult, error) {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, HTTPMaxResponseBodyBytes+1))
	if err != nil {
		return HTTPResult{}, fmt.Errorf("read body: %w", err)
	}
	result := HTTPResult{Status: resp.StatusCode, Headers: make(map[string]string, len(resp.Header))}
	for name, values := range resp.Header {
		result.Headers[name] = strings.Join(values, ", ")
	}
	if len(raw) > HTTPMaxResponseBodyBytes {
		raw, result.Truncated = trimPartialRune(raw[:HTTPMaxResponseBodyBytes]), true
	}
	result.Body = strings.ToValidUTF8(string(raw), "\uFFFD")
	return result, nil
}

// trimPartialRune drops a UTF-8 sequence cut off at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// retryAfter reads a Retry-After header, seconds or an HTTP date, as a wait
// of at least a second and at most HTTPMaxRetryAfter.
func retryAfter(header string, now time.Time) (time.Duration, bool) {
	header = strings.TrimSpace(header)
	if header == "" {
		return 0, false
	}
	var wait time.Duration
	if secs, err := strconv.ParseInt(header, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		wait = time.Duration(min(secs, int64(HTTPMaxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(header); err == nil {
		wait = at.Sub(now)
	} else {
		return 0, false
	}
	return min(max(wait, time.Second), HTTPMaxRetryAfter), true
}

// snoozes is River's count of a job's snoozes, from its metadata.
func snoozes(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m) // no or bad metadata: none
	return m.Snoozes
}

// statusError describes a failed attempt's answer, quoting the start of its
// body.
func statusError(result HTTPResult) string {
	msg := fmt.Sprintf("HTTP %d %s", result.Status, http.StatusText(result.Status))
	if body := strings.TrimSpace(result.Body); body != "" {
		if len(body) > httpErrorExcerptBytes {
			body = string(trimPartialRune([]byte(body[:httpErrorExcerptBytes]))) + "..."
		}
		msg += ": " + body
	}
	return msg
}

// refusal is the guard's own message from inside the client's wrapping.
func refusal(err error) string {
	var refused *safehttp.RefusedError
	if errors.As(err, &refused) {
		return refused.Error()
	}
	return err.Error()
}

func mustJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(raw)
}

// discard ends the task discarded with cause as its last error and the
// response, if any, as the job's output, in a transaction of its own on DB.
// Without DB the task is cancelled with the same error instead. If the
// discard cannot be written (Postgres unreachable), the attempt fails as
// usual and the next one decides again.
func (w *HTTPWorker) discard(ctx context.Context, job *river.Job[HTTPArgs], cause error, result *HTTPResult) error {
	if w.DB == nil {
		return river.JobCancel(cause)
	}
	var output json.RawMessage
	if result != nil {
		output = json.RawMessage(mustJSON(result))
	}
	err := pgx.BeginFunc(ctx, w.DB, func(tx pgx.Tx) error {
		_, err := riverseam.JobDiscardTx(ctx, tx, job.JobRow, cause, output)
		return err
	})
	if err != nil {
		if w.Logger != nil {
			w.Logger.WarnContext(ctx, "http task could not be discarded; failing the attempt instead",
				slog.Int64("task_id", job.ID), slog.Any("error", err))
		}
		return fmt.Errorf("%w (discarding the task failed, so this attempt fails instead: %w)", cause, err)
	}
	// Once discarded, River's cancel of a job no longer running changes
	// nothing (riverseam.JobDiscardTx).
	return riverseam.Discarded(cause)
}

// newHTTPWorker builds the http kind's worker from deps, with the guarded
// transport by default.
func newHTTPWorker(deps Deps) *HTTPWorker {
	transport := deps.HTTP.Transport
	if transport == nil {
		transport = safehttp.NewTransport(nil)
	}
	return &HTTPWorker{Transport: transport, Signer: deps.HTTP.Signer, DB: deps.HTTP.DB, ProgressURLFunc: deps.HTTP.ProgressURLFunc, Logger: deps.Logger}
}
