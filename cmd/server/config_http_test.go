package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/internal/pgtest"
)

func newWebhookSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

func TestConfigHTTPKind(t *testing.T) {
	t.Parallel()

	current, previous := newWebhookSecret(t), newWebhookSecret(t)
	cfg, err := config.Parse(envFunc(map[string]string{
		"DATABASE_URL":            "postgres://localhost/handoff",
		"WEBHOOK_SECRET":          current,
		"WEBHOOK_SECRET_PREVIOUS": previous,
		"HTTP_TASK_ALLOW":         "10.0.0.0/8, hooks.internal:8443",
	}))
	require.NoError(t, err)
	require.False(t, cfg.WebhookSecret.IsZero())
	require.False(t, cfg.WebhookSecretPrevious.IsZero())
	require.Equal(t, "10.0.0.0/8,hooks.internal:8443", cfg.HTTPTaskAllow.String())
	// Printing the configuration never shows a secret.
	printed := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
	require.NotContains(t, printed, strings.TrimPrefix(current, "whsec_"))
	require.NotContains(t, printed, strings.TrimPrefix(previous, "whsec_"))

	cfg, err = config.Parse(envFunc(map[string]string{"DATABASE_URL": "postgres://localhost/handoff"}))
	require.NoError(t, err)
	require.True(t, cfg.WebhookSecret.IsZero())
	require.Nil(t, cfg.HTTPTaskAllow)

	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))
	_, err = config.Parse(envFunc(map[string]string{
		"DATABASE_URL":    "postgres://localhost/handoff",
		"WEBHOOK_SECRET":  short,
		"HTTP_TASK_ALLOW": "10.0.0.0/99,ok.example",
	}))
	require.ErrorContains(t, err, "WEBHOOK_SECRET: the key is 16 bytes")
	require.ErrorContains(t, err, `HTTP_TASK_ALLOW: "10.0.0.0/99"`)
	require.NotContains(t, err.Error(), short, "a bad secret is not echoed")

	_, err = config.Parse(envFunc(map[string]string{"DATABASE_URL": "postgres://localhost/handoff", "WEBHOOK_SECRET_PREVIOUS": previous}))
	require.ErrorContains(t, err, "WEBHOOK_SECRET_PREVIOUS is set but WEBHOOK_SECRET is not")
}

// TestServeHTTPKind runs the server with WEBHOOK_SECRET (rotating) and
// HTTP_TASK_ALLOW and sends http tasks through the API to a receiver on
// 127.0.0.1 that verifies them with the reference Standard Webhooks library.
func TestServeHTTPKind(t *testing.T) {
	t.Parallel()

	current, previous := newWebhookSecret(t), newWebhookSecret(t)
	var mu sync.Mutex
	var verified []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for _, secret := range []string{current, previous} {
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil || wh.Verify(body, r.Header) != nil {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
		}
		mu.Lock()
		verified = append(verified, string(body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"received":true}`)
	}))
	t.Cleanup(receiver.Close)
	// A second loopback receiver that is not on the allow-list.
	unlisted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(unlisted.Close)

	env := map[string]string{
		"DATABASE_URL":            pgtest.NewDBURL(t),
		"HTTP_ADDR":               "127.0.0.1:0",
		"WORKERS":                 "4",
		"WEBHOOK_SECRET":          current,
		"WEBHOOK_SECRET_PREVIOUS": previous,
		"HTTP_TASK_ALLOW":         strings.TrimPrefix(receiver.URL, "http://"),
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()
	base := waitServing(t, &stdout, func() bool { return len(done) == 0 })

	body, err := json.Marshal(map[string]any{"kind": "http", "args": map[string]any{
		"url": receiver.URL + "/callback", "method": "POST",
		"headers": map[string]string{"Content-Type": "application/json"}, "body": `{"id":1}`,
	}})
	require.NoError(t, err)
	created, _, err := postTask(t.Context(), base, string(body))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return getTask(t, base, created.ID).State == "completed" }, 30*time.Second, 20*time.Millisecond)
	var result struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	require.NoError(t, json.Unmarshal(getTask(t, base, created.ID).Result, &result))
	require.Equal(t, http.StatusOK, result.Status)
	require.JSONEq(t, `{"received":true}`, result.Body)
	mu.Lock()
	require.Equal(t, []string{`{"id":1}`}, verified)
	mu.Unlock()

	// Not listed: refused before any connection, the task discarded.
	refused, _, err := postTask(t.Context(), base, `{"kind": "http", "args": {"url": "`+unlisted.URL+`"}}`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return getTask(t, base, refused.ID).State == "discarded" }, 30*time.Second, 20*time.Millisecond)

	// Bad args are the API's 422, and nothing is written.
	_, status, err := postTask(t.Context(), base, `{"kind": "http", "args": {"url": "ftp://example.com", "headers": {"Connection": "close"}}}`)
	require.Equal(t, http.StatusUnprocessableEntity, status)
	require.ErrorContains(t, err, "args.url")

	cancel()
	require.NoError(t, <-done)
	require.NotContains(t, stderr.String(), strings.TrimPrefix(current, "whsec_"))
}
