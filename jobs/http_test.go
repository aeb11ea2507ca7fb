package jobs_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/riverseam/seamtest"
	"github.com/handoff/handoff/internal/safehttp"
	"github.com/handoff/handoff/internal/store"
	"github.com/handoff/handoff/internal/webhook"
	"github.com/handoff/handoff/jobs"
)

// received is one request as the receiver saw it.
type received struct {
	at         time.Time // when the request arrived
	answeredAt time.Time // just before the answer was written
	method     string
	header     http.Header
	body       []byte
}

// receiver is a real HTTP server on 127.0.0.1 that answers its n-th request
// (from 0) with respond(n) and records every request.
type receiver struct {
	*httptest.Server
	respond func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, received{at: time.Now(), method: r.Method, header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		rc.respond(n, &stampingWriter{ResponseWriter: w, stamp: func() {
			rc.mu.Lock()
			rc.reqs[n].answeredAt = time.Now()
			rc.mu.Unlock()
		}}, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// stampingWriter records when the status line is about to be written.
type stampingWriter struct {
	http.ResponseWriter
	stamp   func()
	stamped bool
}

func (s *stampingWriter) WriteHeader(code int) {
	if !s.stamped {
		s.stamped = true
		s.stamp()
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *stampingWriter) Write(b []byte) (int, error) {
	if !s.stamped {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func newSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

func parseSecret(t *testing.T, s string) webhook.Secret {
	t.Helper()
	secret, err := webhook.ParseSecret(s)
	require.NoError(t, err)
	return secret
}

type httpBundle struct {
	pool     *pgxpool.Pool
	client   *river.Client[pgx.Tx]
	current  string // WEBHOOK_SECRET
	previous string // WEBHOOK_SECRET_PREVIOUS
}

type httpOpts struct {
	allow    string // HTTP_TASK_ALLOW; default 127.0.0.1, where receivers listen
	unsigned bool
}

// setupHTTP runs a River client with Handoff's kinds (the http kind with
// the guarded transport, a rotated pair of secrets and the pool) and
// Handoff's middleware on a fresh database.
func setupHTTP(t *testing.T, opts httpOpts) *httpBundle {
	t.Helper()
	pool := pgtest.NewDB(t)
	if opts.allow == "" {
		opts.allow = "127.0.0.1"
	}
	allow, err := safehttp.ParseAllowList(opts.allow)
	require.NoError(t, err)
	bundle := &httpBundle{pool: pool, current: newSecret(t), previous: newSecret(t)}
	var signer *webhook.Signer
	if !opts.unsigned {
		signer = webhook.NewSigner(parseSecret(t, bundle.current), parseSecret(t, bundle.previous))
	}
	transport := safehttp.NewTransport(&safehttp.Options{Allow: allow})
	t.Cleanup(transport.CloseIdleConnections)
	kinds := jobs.Kinds(jobs.Deps{Logger: pgtest.Logger(t), HTTP: jobs.HTTPDeps{Transport: transport, Signer: signer, DB: pool}})
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	seam := riverseam.NewMiddleware(pool, pgtest.Logger(t), riverseam.DefaultIdleBelow)
	seam.CheckArgs = jobs.CheckArgs(kinds)
	bundle.client, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            pgtest.Logger(t),
		Middleware:        []rivertype.Middleware{seam},
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}},
		Workers:           workers,
	})
	require.NoError(t, err)
	require.NoError(t, bundle.client.Start(t.Context()))
	t.Cleanup(func() { stopClient(t, bundle.client) })
	return bundle
}

func stopClient(t *testing.T, client *river.Client[pgx.Tx]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, client.Stop(ctx))
}

// insert enqueues an http task with maxAttempts attempts.
func (b *httpBundle) insert(t *testing.T, args jobs.HTTPArgs, maxAttempts int) int64 {
	t.Helper()
	require.NoError(t, args.Validate())
	res, err := b.client.Insert(t.Context(), args, &river.InsertOpts{MaxAttempts: maxAttempts})
	require.NoError(t, err)
	return res.Job.ID
}

// waitFinal waits for the task to reach a final state and returns its
// tasks row and its job, once River has written everything it holds.
func (b *httpBundle) waitFinal(t *testing.T, id int64) (*store.Task, *rivertype.JobRow) {
	t.Helper()
	var row *store.Task
	require.Eventually(t, func() bool {
		var err error
		row, err = store.New().TaskGetByID(t.Context(), b.pool, id)
		require.NoError(t, err)
		return row.State == "completed" || row.State == "discarded" || row.State == "cancelled"
	}, 60*time.Second, 10*time.Millisecond, "task %d never finished", id)
	stopClient(t, b.client)
	job := seamtest.RequireNoDrift(t, b.pool, id)[0]
	row, err := store.New().TaskGetByID(t.Context(), b.pool, id)
	require.NoError(t, err)
	return row, job
}

// verify checks a request's signature with the reference Standard
// Webhooks library, once per secret, and each signature with its own.
func (b *httpBundle) verify(t *testing.T, r received) {
	t.Helper()
	for _, secret := range []string{b.current, b.previous} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(r.body, r.header))
	}
	sigs := strings.Split(r.header.Get("webhook-signature"), " ")
	require.Len(t, sigs, 2, "two signatures during a rotation")
	for i, secret := range []string{b.current, b.previous} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		single := r.header.Clone()
		single.Set("webhook-signature", sigs[i])
		require.NoError(t, wh.Verify(r.body, single), "signature %d verifies with its own secret", i)
	}
}

func taskErrors(t *testing.T, row *store.Task) []rivertype.AttemptError {
	t.Helper()
	var errs []rivertype.AttemptError
	require.NoError(t, json.Unmarshal(row.Errors, &errs))
	return errs
}

func TestHTTPWorker(t *testing.T) {
	t.Parallel()

	t.Run("CompletesWithResponse", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Reply", "yes")
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "hello")
		})
		// The shape of a completion callback.
		body := `{"id":7,"state":"completed","result":{"ok":true}}`
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL + "/callback?x=1", Method: http.MethodPost, Headers: map[string]string{"Content-Type": "application/json"}, Body: body}, 3)

		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "completed", row.State)
		require.Equal(t, int16(1), row.Attempt)
		var result jobs.HTTPResult
		require.NoError(t, json.Unmarshal(row.Result, &result))
		require.Equal(t, http.StatusCreated, result.Status)
		require.Equal(t, "hello", result.Body)
		require.Equal(t, "yes", result.Headers["X-Reply"])
		require.Equal(t, "a, b", result.Headers["X-Multi"])
		require.False(t, result.Truncated)

		reqs := rc.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, http.MethodPost, reqs[0].method)
		require.Equal(t, body, string(reqs[0].body))
		require.Equal(t, "application/json", reqs[0].header.Get("Content-Type"))
		require.Equal(t, "Handoff", reqs[0].header.Get("User-Agent"))
		require.Equal(t, jobs.HTTPWebhookID(id, nil), reqs[0].header.Get("webhook-id"))
		bundle.verify(t, reqs[0])
	})

	t.Run("ACallbackIsSignedAsTheReportOnItsTask", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
		// As migration 00012's trigger inserts the callback of task 7,
		// finished at its attempt 2 (no client can set this metadata).
		args := jobs.HTTPArgs{URL: rc.URL + "/callback", Method: http.MethodPost, Body: `{"id":7}`}
		res, err := bundle.client.Insert(t.Context(), args, &river.InsertOpts{
			MaxAttempts: 3, Metadata: []byte(`{"handoff_callback_of": 7, "handoff_callback_attempt": 2}`),
		})
		require.NoError(t, err)
		// A client's own http task with the same body.
		forged := bundle.insert(t, args, 3)
		// Both answered before waitFinal, which stops the client.
		require.Eventually(t, func() bool { return len(rc.requests()) == 2 }, 60*time.Second, 10*time.Millisecond)
		bundle.waitFinal(t, res.Job.ID)
		bundle.waitFinal(t, forged)

		ids := map[string]bool{}
		for _, r := range rc.requests() {
			bundle.verify(t, r)
			ids[r.header.Get("webhook-id")] = true
		}
		require.Equal(t, map[string]bool{fmt.Sprintf("callback_7_%d", res.Job.ID): true, jobs.HTTPWebhookID(forged, nil): true}, ids)
		require.Equal(t, fmt.Sprintf("task_%d", forged), jobs.HTTPWebhookID(forged, nil))
	})

	t.Run("RetriesAfter500ThenSucceeds", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 0 {
				http.Error(w, "boom", http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL, Body: "payload"}, 3)

		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "completed", row.State)
		require.Equal(t, int16(2), row.Attempt)
		errs := taskErrors(t, row)
		require.Len(t, errs, 1)
		require.Equal(t, "HTTP 500 Internal Server Error: boom", errs[0].Error)
		require.JSONEq(t, `{"status":200,"headers":{"Content-Length":"2","Content-Type":"text/plain; charset=utf-8","Date":`+mustQuote(t, row.Result)+`},"body":"ok"}`, string(row.Result))

		// The same webhook-id on every attempt, each signed for its own
		// timestamp.
		reqs := rc.requests()
		require.Len(t, reqs, 2)
		for _, r := range reqs {
			require.Equal(t, jobs.HTTPWebhookID(id, nil), r.header.Get("webhook-id"))
			require.Equal(t, "payload", string(r.body))
			bundle.verify(t, r)
		}
	})

	t.Run("RetryAfterWaitsWithoutSpendingAnAttempt", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			switch n {
			case 0:
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusTooManyRequests)
			case 1:
				// An HTTP date works too; it is read at one-second precision.
				w.Header().Set("Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				_, _ = io.WriteString(w, "done")
			}
		})
		// One attempt only: a wait that spent it would discard the task.
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL}, 1)

		row, job := bundle.waitFinal(t, id)
		require.Equal(t, "completed", row.State)
		require.Equal(t, int16(1), row.Attempt, "waiting spent no attempt")
		require.Empty(t, taskErrors(t, row))
		var metadata struct {
			Snoozes int `json:"snoozes"`
		}
		require.NoError(t, json.Unmarshal(job.Metadata, &metadata))
		require.Equal(t, 2, metadata.Snoozes)

		// River scheduled each next run Retry-After from after the answer
		// was written, and runs nothing before its time: no clock race.
		reqs := rc.requests()
		require.Len(t, reqs, 3)
		require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].answeredAt), 2*time.Second)
		require.GreaterOrEqual(t, reqs[2].at.Sub(reqs[1].answeredAt), time.Second, "an HTTP date's wait, whole seconds")
		for _, r := range reqs {
			require.Equal(t, jobs.HTTPWebhookID(id, nil), r.header.Get("webhook-id"))
		}
	})

	t.Run("Discards404WithResponseRecorded", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Why", "gone")
			http.Error(w, "no such hook", http.StatusNotFound)
		})
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL + "/missing", Method: http.MethodPut, Body: "x"}, 5)

		row, job := bundle.waitFinal(t, id)
		require.Equal(t, "discarded", row.State)
		require.Equal(t, int16(1), row.Attempt, "not retried")
		require.Equal(t, int16(5), row.MaxAttempts)
		require.NotNil(t, row.FinishedAt)
		errs := taskErrors(t, row)
		require.Len(t, errs, 1)
		require.Contains(t, errs[0].Error, "HTTP 404 Not Found, not retried")

		// The response is recorded in the error, whole, and as the job's
		// output.
		_, recorded, ok := strings.Cut(errs[0].Error, "; response: ")
		require.True(t, ok, errs[0].Error)
		var result jobs.HTTPResult
		require.NoError(t, json.Unmarshal([]byte(recorded), &result))
		require.Equal(t, http.StatusNotFound, result.Status)
		require.Equal(t, "no such hook\n", result.Body)
		require.Equal(t, "gone", result.Headers["X-Why"])
		require.JSONEq(t, recorded, string(job.Output()))
		require.Len(t, rc.requests(), 1)
	})

	t.Run("TimeoutRetries", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 0 {
				// Never answers in time: waits until the client gives up.
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
			_, _ = io.WriteString(w, "late but fine")
		})
		// Long enough that the second, immediate answer cannot miss it on a
		// loaded machine; the first attempt costs this much test time.
		timeout := 2.0
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL, Timeout: &timeout}, 3)

		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "completed", row.State)
		require.Equal(t, int16(2), row.Attempt)
		errs := taskErrors(t, row)
		require.Len(t, errs, 1)
		require.Contains(t, errs[0].Error, "no response within the timeout of 2s")
		reqs := rc.requests()
		require.Len(t, reqs, 2)
		require.Equal(t, reqs[0].header.Get("webhook-id"), reqs[1].header.Get("webhook-id"))
	})

	t.Run("ConnectionErrorRetries", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		// A loopback server that closes every connection without a word:
		// the request fails with no answer.
		ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				_ = conn.Close()
			}
		}()
		id := bundle.insert(t, jobs.HTTPArgs{URL: "http://" + ln.Addr().String() + "/"}, 2)

		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "discarded", row.State, "both attempts failed")
		require.Equal(t, int16(2), row.Attempt, "retried")
		errs := taskErrors(t, row)
		require.Len(t, errs, 2)
		for _, e := range errs {
			require.Contains(t, e.Error, "request failed: Post")
		}
	})

	t.Run("RefusedTargetDiscarded", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		// Receivers listen on 127.0.0.1; only another address is allowed.
		bundle := setupHTTP(t, httpOpts{allow: "10.0.0.0/8"})
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL}, 5)

		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "discarded", row.State)
		require.Equal(t, int16(1), row.Attempt, "a refused target is not retried")
		errs := taskErrors(t, row)
		require.Len(t, errs, 1)
		require.Regexp(t, `not sent: refused to connect to 127\.0\.0\.1:\d+: a loopback address`, errs[0].Error)
		require.Empty(t, rc.requests())
	})

	t.Run("RedirectToLoopbackRefused", func(t *testing.T) {
		t.Parallel()
		target := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "target") })
		redirector := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/landing", http.StatusTemporaryRedirect)
		})
		// The redirector is allowed by its address and port; the target is
		// not.
		bundle := setupHTTP(t, httpOpts{allow: strings.TrimPrefix(redirector.URL, "http://")})
		id := bundle.insert(t, jobs.HTTPArgs{URL: redirector.URL}, 5)

		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "discarded", row.State)
		errs := taskErrors(t, row)
		require.Len(t, errs, 1)
		require.Regexp(t, `refused to connect to 127\.0\.0\.1:\d+: a loopback address`, errs[0].Error)
		require.Len(t, redirector.requests(), 1)
		require.Empty(t, target.requests())

		t.Run("AllowedOnceListed", func(t *testing.T) {
			t.Parallel()
			bundle := setupHTTP(t, httpOpts{allow: strings.TrimPrefix(redirector.URL, "http://") + "," + strings.TrimPrefix(target.URL, "http://")})
			id := bundle.insert(t, jobs.HTTPArgs{URL: redirector.URL, Body: "kept by a 307"}, 5)
			row, _ := bundle.waitFinal(t, id)
			require.Equal(t, "completed", row.State)
			var result jobs.HTTPResult
			require.NoError(t, json.Unmarshal(row.Result, &result))
			require.Equal(t, "target", result.Body)
			reqs := target.requests()
			require.Len(t, reqs, 1)
			require.Equal(t, "kept by a 307", string(reqs[0].body))
			bundle.verify(t, reqs[0])
		})
	})

	t.Run("SeeOtherRedirectResigned", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		target := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "see other") })
		redirector := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusSeeOther)
		})
		id := bundle.insert(t, jobs.HTTPArgs{URL: redirector.URL, Body: "posted"}, 2)
		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "completed", row.State)
		// A 303 turns the POST into a GET without a body, signed for what
		// it carries.
		reqs := target.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, http.MethodGet, reqs[0].method)
		require.Empty(t, reqs[0].body)
		bundle.verify(t, reqs[0])
		bundle.verify(t, redirector.requests()[0])
	})

	t.Run("TooManyRedirectsDiscarded", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		var rc *receiver
		rc = newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, rc.URL+"/"+strings.Repeat("r", n+1), http.StatusFound)
		})
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL, Method: http.MethodGet}, 5)
		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "discarded", row.State)
		require.Contains(t, taskErrors(t, row)[0].Error, "HTTP 302 Found, not retried")
		require.Len(t, rc.requests(), jobs.HTTPMaxRedirects+1)
	})

	t.Run("BodyTruncated", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		big := strings.Repeat("é", jobs.HTTPMaxResponseBodyBytes) // two bytes each
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, big) })
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL, Method: http.MethodGet}, 1)
		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "completed", row.State)
		var result jobs.HTTPResult
		require.NoError(t, json.Unmarshal(row.Result, &result))
		require.True(t, result.Truncated)
		require.Len(t, result.Body, jobs.HTTPMaxResponseBodyBytes, "cut on a character boundary")
		require.True(t, strings.HasPrefix(big, result.Body))
	})

	t.Run("UnsignedWithoutSecret", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{unsigned: true})
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
		id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL, Body: "{}"}, 1)
		row, _ := bundle.waitFinal(t, id)
		require.Equal(t, "completed", row.State)
		reqs := rc.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, jobs.HTTPWebhookID(id, nil), reqs[0].header.Get("webhook-id"))
		require.NotEmpty(t, reqs[0].header.Get("webhook-timestamp"))
		require.Empty(t, reqs[0].header.Values("webhook-signature"))
	})

	t.Run("InvalidArgsDiscarded", func(t *testing.T) {
		t.Parallel()
		bundle := setupHTTP(t, httpOpts{})
		// Args that skipped validation (inserted by other code than the
		// API) are checked again before anything is sent.
		res, err := bundle.client.Insert(t.Context(), jobs.HTTPArgs{URL: "file:///etc/passwd"}, &river.InsertOpts{MaxAttempts: 5})
		require.NoError(t, err)
		row, _ := bundle.waitFinal(t, res.Job.ID)
		require.Equal(t, "discarded", row.State)
		require.Equal(t, int16(1), row.Attempt)
		require.Contains(t, taskErrors(t, row)[0].Error, "not run: its args are invalid: url: must be an absolute http:// or https:// URL")
	})
}

// mustQuote returns the JSON string of the Date header in a result, which
// the test cannot know in advance.
func mustQuote(t *testing.T, result []byte) string {
	t.Helper()
	var r jobs.HTTPResult
	require.NoError(t, json.Unmarshal(result, &r))
	raw, err := json.Marshal(r.Headers["Date"])
	require.NoError(t, err)
	return string(raw)
}

// TestHTTPWorkerCancelledWhileSending: cancelling a running http task
// cancels its request; River records it cancelled, not retried.
func TestHTTPWorkerCancelledWhileSending(t *testing.T) {
	t.Parallel()
	bundle := setupHTTP(t, httpOpts{})
	started := make(chan struct{}, 1)
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	})
	timeout := 120.0
	id := bundle.insert(t, jobs.HTTPArgs{URL: rc.URL, Timeout: &timeout}, 5)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the request never arrived")
	}
	_, err := bundle.client.JobCancel(t.Context(), id)
	require.NoError(t, err)
	row, _ := bundle.waitFinal(t, id)
	require.Equal(t, "cancelled", row.State)
	job, err := riverpgxv5.New(bundle.pool).GetExecutor().JobGetByID(t.Context(), &riverdriver.JobGetByIDParams{ID: id})
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCancelled, job.State)
}

// TestHTTPWorkerInTx works http jobs with rivertest inside a rolled-back
// transaction, as the other kinds' tests do: the worker's DB may be a
// pgx.Tx (its discard then runs in a savepoint).
func TestHTTPWorkerInTx(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		tx     pgx.Tx
		worker *rivertest.Worker[jobs.HTTPArgs, pgx.Tx]
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := pgtest.Tx(t)
		allow, err := safehttp.ParseAllowList("127.0.0.1")
		require.NoError(t, err)
		transport := safehttp.NewTransport(&safehttp.Options{Allow: allow})
		t.Cleanup(transport.CloseIdleConnections)
		w := &jobs.HTTPWorker{Transport: transport, DB: tx, Logger: pgtest.Logger(t)}
		return &testBundle{tx: tx, worker: rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, w)}
	}

	t.Run("Completes", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t)
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "fine") })
		res, err := bundle.worker.Work(ctx, t, bundle.tx, jobs.HTTPArgs{URL: rc.URL, Method: http.MethodGet}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		row, err := store.New().TaskGetByID(ctx, bundle.tx, res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, "completed", row.State)
		require.Contains(t, string(row.Result), `"body": "fine"`)
	})

	t.Run("Gone410Discarded", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t)
		rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { http.Error(w, "gone", http.StatusGone) })
		res, err := bundle.worker.Work(ctx, t, bundle.tx, jobs.HTTPArgs{URL: rc.URL}, &river.InsertOpts{MaxAttempts: 10})
		require.NoError(t, err) // rivertest reports a JobCancel as an event, not an error
		require.Equal(t, rivertype.JobStateDiscarded, res.Job.State)
		row, err := store.New().TaskGetByID(ctx, bundle.tx, res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, "discarded", row.State)
		require.Equal(t, int16(1), row.Attempt)
		require.Len(t, taskErrors(t, row), 1)
		require.Contains(t, taskErrors(t, row)[0].Error, `HTTP 410 Gone, not retried`)
		require.Contains(t, taskErrors(t, row)[0].Error, `response: {"status":410`)
	})

	t.Run("RefusedWithoutDBIsCancelled", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		tx := pgtest.Tx(t)
		// Without DB the worker cannot discard: it cancels, with the
		// reason. The default transport allows no loopback.
		worker := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &jobs.HTTPWorker{})
		res, err := worker.Work(ctx, t, tx, jobs.HTTPArgs{URL: "http://127.0.0.1:9/"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, rivertype.JobStateCancelled, res.Job.State)
		require.Len(t, res.Job.Errors, 1)
		require.Equal(t, "JobCancelError: not sent: refused to connect to 127.0.0.1:9: a loopback address (list it in HTTP_TASK_ALLOW to allow it)", res.Job.Errors[0].Error)
	})
}

// TestUndecodableArgsDiscarded: a job whose args its worker cannot decode
// (handoff.enqueue checks only the top-level fields; a job may also be
// inserted into river_job straight) ends discarded after its first attempt,
// with the decoder's reason, instead of failing every attempt it has; so
// does one whose args decode but fail the kind's Validate, without running.
func TestUndecodableArgsDiscarded(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, httpOpts{})

	const undecodable, invalid = "not run: its args cannot be decoded", "not run: its args are invalid"
	cases := map[string]struct{ kind, args, not, reason string }{
		"header not a string":  {"http", `{"url": "http://127.0.0.1:1/", "headers": {"a": 1}}`, undecodable, "HTTPArgs.headers of type string"},
		"header a list":        {"http", `{"url": "http://127.0.0.1:1/", "headers": {"a": ["x"]}}`, undecodable, "HTTPArgs.headers of type string"},
		"count with fraction":  {"sleep", `{"seconds": 0, "fail_times": 1.0}`, undecodable, "SleepArgs.fail_times of type int"},
		"seconds not a number": {"sleep", `{"seconds": "1"}`, undecodable, "SleepArgs.seconds of type float64"},
		// Args that decode but that the kind's Validate refuses (what a
		// kind's handoff tags cannot say, for SQL) never reach the worker:
		// this sleep would run for two hours.
		"seconds beyond bound": {"sleep", `{"seconds": 7200}`, invalid, "seconds: must be between 0 and 3600"},
		"url not http":         {"http", `{"url": "ftp://example.com/"}`, invalid, "url: "},
	}
	ids := map[string]int64{}
	for name, c := range cases {
		var id int64
		require.NoError(t, b.pool.QueryRow(t.Context(), `
			INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, metadata, tags)
			VALUES ($1, $2, 5, 1, 'default', 'available', now(), '{}', '{}') RETURNING id`, c.args, c.kind).Scan(&id))
		ids[name] = id
	}
	// A job that decodes and fails is retried as before.
	var retried int64
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, metadata, tags)
		VALUES ('{"seconds": 0, "fail_times": 1}', 'sleep', 5, 1, 'default', 'available', now(), '{}', '{}') RETURNING id`).Scan(&retried))

	require.Eventually(t, func() bool {
		var unfinished int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM tasks WHERE id = ANY($1) AND state NOT IN ('completed', 'discarded', 'cancelled')`,
			append(slices.Collect(maps.Values(ids)), retried)).Scan(&unfinished))
		return unfinished == 0
	}, 60*time.Second, 10*time.Millisecond)
	stopClient(t, b.client)

	for name, c := range cases {
		row, err := store.New().TaskGetByID(t.Context(), b.pool, ids[name])
		require.NoError(t, err)
		require.Equal(t, "discarded", row.State, name)
		require.EqualValues(t, 1, row.Attempt, name)
		var errs []struct{ Error string }
		require.NoError(t, json.Unmarshal(row.Errors, &errs), name)
		require.Len(t, errs, 1, name)
		require.Contains(t, errs[0].Error, c.not, name)
		require.Contains(t, errs[0].Error, c.reason, name)
		seamtest.RequireNoDrift(t, b.pool, ids[name])
	}
	row, err := store.New().TaskGetByID(t.Context(), b.pool, retried)
	require.NoError(t, err)
	require.Equal(t, "completed", row.State)
	require.EqualValues(t, 2, row.Attempt, "a failure of a job whose args decode is retried")
}
