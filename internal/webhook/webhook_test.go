package webhook_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/webhook"
)

// newSecret returns a fresh secret in its text form.
func newSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

func mustParse(t *testing.T, s string) webhook.Secret {
	t.Helper()
	secret, err := webhook.ParseSecret(s)
	require.NoError(t, err)
	return secret
}

// verify checks h and body with the reference Standard Webhooks library,
// an implementation independent of Handoff's.
func verify(t *testing.T, secret string, h http.Header, body []byte) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	return wh.Verify(body, h)
}

func TestSignerVerifiesWithReferenceLibrary(t *testing.T) {
	t.Parallel()

	for _, body := range []string{"", `{"id":1,"state":"completed"}`, "line one\nline two \u00e9\u4e16", strings.Repeat("x", 1<<16)} {
		secret := newSecret(t)
		h := http.Header{}
		webhook.NewSigner(mustParse(t, secret)).Sign(h, "task_42", time.Now(), []byte(body))

		require.NoError(t, verify(t, secret, h, []byte(body)))
		require.Equal(t, "task_42", h.Get(webhook.HeaderID))
		require.True(t, strings.HasPrefix(h.Get(webhook.HeaderSignature), "v1,"))
		// A changed body, id or timestamp no longer verifies.
		require.ErrorIs(t, verify(t, secret, h, []byte(body+" ")), standardwebhooks.ErrNoMatchingSignature)
		other := h.Clone()
		other.Set(webhook.HeaderID, "task_43")
		require.ErrorIs(t, verify(t, secret, other, []byte(body)), standardwebhooks.ErrNoMatchingSignature)
		// Another secret does not verify.
		require.ErrorIs(t, verify(t, newSecret(t), h, []byte(body)), standardwebhooks.ErrNoMatchingSignature)
	}
}

func TestSignerMatchesReferenceSignature(t *testing.T) {
	t.Parallel()

	// The reference library's Sign for the same inputs gives the same value.
	secret := newSecret(t)
	at := time.Unix(1_700_000_000, 0)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	want, err := wh.Sign("msg_1", at, []byte(`{"a":1}`))
	require.NoError(t, err)
	require.Equal(t, want, webhook.NewSigner(mustParse(t, secret)).Signature("msg_1", at, []byte(`{"a":1}`)))
}

func TestSignerRotation(t *testing.T) {
	t.Parallel()

	current, previous, unrelated := newSecret(t), newSecret(t), newSecret(t)
	signer := webhook.NewSigner(mustParse(t, current), mustParse(t, previous))
	body := []byte(`{"hello":"world"}`)
	h := http.Header{}
	signer.Sign(h, "task_7", time.Now(), body)

	sigs := strings.Split(h.Get(webhook.HeaderSignature), " ")
	require.Len(t, sigs, 2)
	// A receiver on either secret verifies the request, and each signature
	// on its own verifies with its own secret only.
	require.NoError(t, verify(t, current, h, body))
	require.NoError(t, verify(t, previous, h, body))
	require.ErrorIs(t, verify(t, unrelated, h, body), standardwebhooks.ErrNoMatchingSignature)
	for i, secret := range []string{current, previous} {
		single := h.Clone()
		single.Set(webhook.HeaderSignature, sigs[i])
		require.NoError(t, verify(t, secret, single, body), "signature %d with its own secret", i)
		require.Error(t, verify(t, []string{previous, current}[i], single, body), "signature %d with the other secret", i)
	}
}

func TestSignerNil(t *testing.T) {
	t.Parallel()

	require.Nil(t, webhook.NewSigner(webhook.Secret{}))
	h := http.Header{}
	h.Set(webhook.HeaderSignature, "v1,stale")
	var signer *webhook.Signer
	signer.Sign(h, "task_1", time.Unix(1_700_000_000, 0), nil)
	require.Equal(t, "task_1", h.Get(webhook.HeaderID))
	require.Equal(t, "1700000000", h.Get(webhook.HeaderTimestamp))
	require.Empty(t, h.Values(webhook.HeaderSignature), "no secret, no signature, and no stale one passed through")
}

func TestParseSecret(t *testing.T) {
	t.Parallel()

	good := newSecret(t)
	secret, err := webhook.ParseSecret(good)
	require.NoError(t, err)
	require.False(t, secret.IsZero())
	// The key never shows in text or logs.
	require.Equal(t, "whsec_[redacted]", secret.String())
	require.Equal(t, "whsec_[redacted]", fmt.Sprint(secret))
	require.Equal(t, "whsec_[redacted]", fmt.Sprintf("%#v", secret))
	require.Contains(t, fmt.Sprintf("%+v", struct{ S webhook.Secret }{secret}), "whsec_[redacted]")
	require.NotContains(t, secret.LogValue().String(), strings.TrimPrefix(good, webhook.SecretPrefix))

	for name, bad := range map[string]string{
		"NoPrefix":   strings.TrimPrefix(good, webhook.SecretPrefix),
		"NotBase64":  "whsec_not base64!",
		"TooShort":   "whsec_" + base64.StdEncoding.EncodeToString([]byte("short key")),
		"Empty":      "",
		"PrefixOnly": "whsec_",
	} {
		_, err := webhook.ParseSecret(bad)
		require.Error(t, err, name)
	}
}
