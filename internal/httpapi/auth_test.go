package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/auth"
	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

type authBundle struct {
	*testBundle
	tokens *live.TokenSigner
	keyA   string
	keyB   string
}

type authSetupOpts struct {
	auth          httpapi.AuthOpts
	maxUnfinished int
	noKeys        bool
}

// authSetup is a server with API keys, the live routes and the pages, and
// (unless noKeys) a key for tenant "a" and one for tenant "b".
func authSetup(t *testing.T, opts authSetupOpts) *authBundle {
	t.Helper()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	logger := pgtest.Logger(t)
	kinds := jobs.Kinds(jobs.Deps{Logger: logger, Progress: live.NewProgressWriter(pool)})
	// No queues: tasks stay as created.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: logger})
	require.NoError(t, err)
	svc := task.NewService(pool, client, kinds, &task.ServiceOpts{MaxUnfinished: opts.maxUnfinished, Logger: logger})

	hub := live.NewHub(pool, &live.HubOpts{Logger: logger})
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(hubCtx) }()
	t.Cleanup(func() { stopHub(); <-hubDone })
	tokens, err := live.NewTokenSigner([]byte(strings.Repeat("k", 32)), 0, nil)
	require.NoError(t, err)

	b := &authBundle{tokens: tokens}
	if !opts.noKeys {
		b.keyA, _, err = auth.Create(ctx, pool, "a", "test key a")
		require.NoError(t, err)
		b.keyB, _, err = auth.Create(ctx, pool, "b", "")
		require.NoError(t, err)
	}
	authOpts := opts.auth
	if authOpts.Authenticator == nil {
		authOpts.Authenticator = auth.NewAuthenticator(pool, &auth.AuthenticatorOpts{TTL: 50 * time.Millisecond, Logger: logger})
	}
	srv := httptest.NewServer(httpapi.NewServer(logger, svc, &httpapi.ServerOpts{
		Live: &httpapi.LiveOpts{Hub: hub, Tokens: tokens},
		Auth: &authOpts,
	}))
	t.Cleanup(srv.Close)
	b.testBundle = &testBundle{pool: pool, srv: srv}
	return b
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

func (b *authBundle) createAs(t *testing.T, key, body string, header ...string) task.Task {
	t.Helper()
	r := b.do(t, http.MethodPost, "/v1/tasks", body, append(bearer(key), header...)...)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	return decodeTask(t, r)
}

// TestTenantIsolationHTTP: tenant B gets 404 for tenant A's task on every
// route that names a task, never sees it in a list, and changes nothing.
func TestTenantIsolationHTTP(t *testing.T) {
	t.Parallel()
	b := authSetup(t, authSetupOpts{})
	mine := b.createAs(t, b.keyA, `{"kind": "sleep", "args": {"seconds": 60}}`, "Idempotency-Key", "shared-key")
	id := strconv.FormatInt(mine.ID, 10)

	for _, tc := range []struct {
		name, method, path string
	}{
		{"Get", http.MethodGet, "/v1/tasks/" + id},
		{"HEAD", http.MethodHead, "/v1/tasks/" + id},
		{"GetWait", http.MethodGet, "/v1/tasks/" + id + "?wait=1s"},
		{"Events", http.MethodGet, "/v1/tasks/" + id + "/events"},
		{"Cancel", http.MethodPost, "/v1/tasks/" + id + "/cancel"},
		{"Retry", http.MethodPost, "/v1/tasks/" + id + "/retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, tc.method, tc.path, "", bearer(b.keyB)...)
			require.Empty(t, r.header.Values("Link"), "no read link for another tenant's task")
			if tc.method == http.MethodHead {
				require.Equal(t, http.StatusNotFound, r.status)
				return
			}
			requireProblem(t, r, http.StatusNotFound, "no task has this id")
			// The owner still sees it, unchanged.
			r = b.do(t, http.MethodGet, "/v1/tasks/"+id, "", bearer(b.keyA)...)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			got := decodeTask(t, r)
			require.Equal(t, "available", got.State)
			require.Nil(t, got.CancelRequestedAt)
		})
	}

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		for _, query := range []string{"", "?state=available", "?kind=sleep", "?kind=sleep&state=available"} {
			r := b.do(t, http.MethodGet, "/v1/tasks"+query, "", bearer(b.keyB)...)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			require.NotContains(t, string(r.body), fmt.Sprintf(`"id":%d,`, mine.ID), query)
			r = b.do(t, http.MethodGet, "/v1/tasks"+query, "", bearer(b.keyA)...)
			require.Contains(t, string(r.body), fmt.Sprintf(`"id":%d,`, mine.ID), query)
		}
	})

	t.Run("SameIdempotencyKeyTwoTasks", func(t *testing.T) {
		t.Parallel()
		theirs := b.createAs(t, b.keyB, `{"kind": "sleep", "args": {"seconds": 60}}`, "Idempotency-Key", "shared-key")
		require.NotEqual(t, mine.ID, theirs.ID)
	})

	t.Run("OwnerGetsReadLinks", func(t *testing.T) {
		t.Parallel()
		r := b.do(t, http.MethodGet, "/v1/tasks/"+id, "", bearer(b.keyA)...)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Len(t, r.header.Values("Link"), 2)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		for _, link := range r.header.Values("Link") {
			token := strings.SplitN(strings.SplitN(link, "token=", 2)[1], ">", 2)[0]
			require.NoError(t, b.tokens.Verify(mine.ID, token), link)
		}
	})

	t.Run("ReadTokenNeedsNoKey", func(t *testing.T) {
		t.Parallel()
		token := b.tokens.Sign(mine.ID)
		r := b.do(t, http.MethodGet, "/v1/tasks/"+id+"?token="+token, "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		// The token is for that task only.
		r = b.do(t, http.MethodGet, "/v1/tasks/"+strconv.FormatInt(mine.ID+1, 10)+"?token="+token, "")
		requireProblem(t, r, http.StatusForbidden, "token")
	})
}

// TestUnauthenticated: a missing, malformed, unknown or revoked key is the
// same 401 on every tenant route, and nothing is written.
func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	b := authSetup(t, authSetupOpts{})
	ctx := t.Context()
	revoked, rec, err := auth.Create(ctx, b.pool, "a", "")
	require.NoError(t, err)
	_, err = auth.Revoke(ctx, b.pool, rec.Prefix)
	require.NoError(t, err)
	unknown := "hnd_" + strings.Repeat("a", 12) + "_" + strings.Repeat("A", 43)
	// The secret of a real prefix, changed: a lookup finds the prefix.
	wrongSecret := b.keyA[:len(b.keyA)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(b.keyA, "A")]

	headers := map[string][]string{
		"Missing":     nil,
		"Empty":       {"Authorization", ""},
		"NotBearer":   {"Authorization", "Basic " + b.keyA},
		"Malformed":   {"Authorization", "Bearer not-a-key"},
		"Unknown":     bearer(unknown),
		"WrongSecret": bearer(wrongSecret),
		"Revoked":     bearer(revoked),
	}
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/tasks", `{"kind": "noop", "args": {}}`},
		{http.MethodGet, "/v1/tasks", ""},
		{http.MethodGet, "/v1/tasks/1", ""},
		{http.MethodGet, "/v1/tasks/1/events", ""},
		{http.MethodPost, "/v1/tasks/1/cancel", ""},
	}
	var first []byte
	for name, header := range headers {
		for _, route := range routes {
			r := b.do(t, route.method, route.path, route.body, header...)
			requireProblem(t, r, http.StatusUnauthorized, "a valid API key is required")
			require.Equal(t, `Bearer realm="handoff"`, r.header.Get("WWW-Authenticate"), name)
			if route.path == "/v1/tasks" && route.method == http.MethodPost {
				if first == nil {
					first = r.body
				}
				require.Equal(t, string(first), string(r.body), "%s: every refusal reads the same", name)
			}
		}
	}
	require.Zero(t, countRows(t, b.pool))
	// The right key passes.
	b.createAs(t, b.keyA, `{"kind": "noop", "args": {}}`)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	// One token per 100 s, two in the bucket: the third request is over.
	b := authSetup(t, authSetupOpts{auth: httpapi.AuthOpts{RateLimit: 0.01, RateBurst: 2}})
	for range 2 {
		r := b.do(t, http.MethodGet, "/v1/tasks", "", bearer(b.keyA)...)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
	}
	r := b.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "args": {}}`, bearer(b.keyA)...)
	requireProblem(t, r, http.StatusTooManyRequests, "rate limit")
	wait, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, wait, 1)
	require.Zero(t, countRows(t, b.pool))

	// Tenant B has its own bucket.
	r = b.do(t, http.MethodGet, "/v1/tasks", "", bearer(b.keyB)...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
}

func TestUnfinishedCapHTTP(t *testing.T) {
	t.Parallel()
	b := authSetup(t, authSetupOpts{maxUnfinished: 1})
	b.createAs(t, b.keyA, `{"kind": "noop", "args": {}}`)
	before := countRows(t, b.pool)
	r := b.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "args": {}}`, bearer(b.keyA)...)
	requireProblem(t, r, http.StatusTooManyRequests, "unfinished")
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Equal(t, before, countRows(t, b.pool))
	b.createAs(t, b.keyB, `{"kind": "noop", "args": {}}`)
}

// TestCrossSite: requests a browser sends cross-site without asking first
// are refused on an open server, and write nothing.
func TestCrossSite(t *testing.T) {
	t.Parallel()
	b := authSetup(t, authSetupOpts{auth: httpapi.AuthOpts{Mode: httpapi.AuthDisabled, AllowedHosts: []string{"handoff.internal"}}, noKeys: true})
	victim := b.do(t, http.MethodPost, "/v1/tasks", `{"kind": "sleep", "args": {"seconds": 60}}`)
	require.Equal(t, http.StatusAccepted, victim.status, string(victim.body))
	id := strconv.FormatInt(decodeTask(t, victim).ID, 10)
	before := countRows(t, b.pool)

	send := func(t *testing.T, method, path, contentType, body, host string, header ...string) *response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if host != "" {
			req.Host = host
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		r := &response{status: resp.StatusCode, header: resp.Header}
		return r
	}
	crossSite := []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}
	for _, tc := range []struct {
		name, method, path, contentType, body, host string
		header                                      []string
		status                                      int
	}{
		{"TextPlainBody", http.MethodPost, "/v1/tasks", "text/plain", `{"kind": "noop", "args": {}}`, "", nil, http.StatusUnsupportedMediaType},
		{"TextPlainBodyCrossSite", http.MethodPost, "/v1/tasks", "text/plain", `{"kind": "noop", "args": {}}`, "", crossSite, http.StatusForbidden},
		{"FormBody", http.MethodPost, "/v1/tasks", "application/x-www-form-urlencoded", `{"kind": "noop", "args": {}}`, "", nil, http.StatusUnsupportedMediaType},
		{"BodilessCancelCrossSite", http.MethodPost, "/v1/tasks/" + id + "/cancel", "", "", "", crossSite, http.StatusForbidden},
		{"BodilessCancelForeignOrigin", http.MethodPost, "/v1/tasks/" + id + "/cancel", "", "", "", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"ForeignHostCreate", http.MethodPost, "/v1/tasks", "application/json", `{"kind": "noop", "args": {}}`, "rebind.evil.example:8080", nil, http.StatusForbidden},
		{"ForeignHostCancel", http.MethodPost, "/v1/tasks/" + id + "/cancel", "", "", "rebind.evil.example", nil, http.StatusForbidden},
		{"ForeignHostRead", http.MethodGet, "/v1/tasks/" + id, "", "", "rebind.evil.example", nil, http.StatusForbidden},
		{"ForeignHostForm", http.MethodPost, "/tasks", "application/x-www-form-urlencoded", "seconds=1", "rebind.evil.example", nil, http.StatusForbidden},
	} {
		r := send(t, tc.method, tc.path, tc.contentType, tc.body, tc.host, tc.header...)
		require.Equal(t, tc.status, r.status, tc.name)
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), tc.name)
	}
	require.Equal(t, before, countRows(t, b.pool), "nothing written")
	r := b.do(t, http.MethodGet, "/v1/tasks/"+id, "")
	require.Equal(t, "available", decodeTask(t, r).State)

	// Loopback names and allowed hosts are served.
	for _, host := range []string{"localhost:8080", "handoff.internal", "[::1]:9"} {
		r := send(t, http.MethodGet, "/v1/tasks/"+id, "", "", host)
		require.Equal(t, http.StatusOK, r.status, host)
	}
}

// TestAuthUntilKeys: open on loopback until the first key is made, then
// keys are required, for good.
func TestAuthUntilKeys(t *testing.T) {
	t.Parallel()
	b := authSetup(t, authSetupOpts{auth: httpapi.AuthOpts{Mode: httpapi.AuthUntilKeys}, noKeys: true})
	r := b.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "args": {}}`)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r = b.do(t, http.MethodPost, "/tasks", "seconds=0", "Content-Type", "application/x-www-form-urlencoded", "Accept", "application/json")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	key, rec, err := auth.Create(t.Context(), b.pool, "a", "")
	require.NoError(t, err)
	_, err = auth.Revoke(t.Context(), b.pool, rec.Prefix)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return b.do(t, http.MethodGet, "/v1/tasks", "").status == http.StatusUnauthorized
	}, 10*time.Second, 20*time.Millisecond, "a key was made, even if revoked since: keys are required")
	r = b.do(t, http.MethodGet, "/v1/tasks", "", bearer(key)...)
	require.Equal(t, http.StatusUnauthorized, r.status)
	// The form cannot create for anyone now.
	r = b.do(t, http.MethodPost, "/tasks", "seconds=0", "Content-Type", "application/x-www-form-urlencoded")
	requireProblem(t, r, http.StatusForbidden, "requires API keys")
}

// TestKeyInOpenMode: with AUTH_DISABLED a key still names its tenant.
func TestKeyInOpenMode(t *testing.T) {
	t.Parallel()
	b := authSetup(t, authSetupOpts{auth: httpapi.AuthOpts{Mode: httpapi.AuthDisabled}})
	theirs := b.createAs(t, b.keyA, `{"kind": "noop", "args": {}}`)
	r := b.do(t, http.MethodGet, "/v1/tasks/"+strconv.FormatInt(theirs.ID, 10), "")
	requireProblem(t, r, http.StatusNotFound, "no task")
	r = b.do(t, http.MethodGet, "/v1/tasks", "", "Authorization", "Bearer nonsense")
	require.Equal(t, http.StatusUnauthorized, r.status)
	// The README's curl with $HANDOFF_KEY unset sends "Bearer ": no key.
	r = b.do(t, http.MethodGet, "/v1/tasks", "", "Authorization", "Bearer ")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
}
