package live_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/live"
)

func TestTokenSigner(t *testing.T) {
	t.Parallel()

	secret := []byte(strings.Repeat("s", 32))
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	t.Run("ValidForItsTaskUntilExpiry", func(t *testing.T) {
		t.Parallel()
		signer, err := live.NewTokenSigner(secret, time.Hour, clock)
		require.NoError(t, err)
		token := signer.Sign(42)
		require.NoError(t, signer.Verify(42, token))
		require.ErrorIs(t, signer.Verify(43, token), live.ErrTokenInvalid)

		later, err := live.NewTokenSigner(secret, time.Hour, func() time.Time { return now.Add(time.Hour) })
		require.NoError(t, err)
		require.ErrorIs(t, later.Verify(42, token), live.ErrTokenInvalid, "expired")
		almost, err := live.NewTokenSigner(secret, time.Hour, func() time.Time { return now.Add(59 * time.Minute) })
		require.NoError(t, err)
		require.NoError(t, almost.Verify(42, token))
	})

	t.Run("OtherSecretOrTamperedRefused", func(t *testing.T) {
		t.Parallel()
		signer, err := live.NewTokenSigner(secret, time.Hour, clock)
		require.NoError(t, err)
		other, err := live.NewTokenSigner([]byte(strings.Repeat("o", 32)), time.Hour, clock)
		require.NoError(t, err)
		token := signer.Sign(7)
		require.ErrorIs(t, other.Verify(7, token), live.ErrTokenInvalid)
		flip := func(i int) string {
			c := byte('A')
			if token[i] == 'A' {
				c = 'B'
			}
			return token[:i] + string(c) + token[i+1:]
		}
		for _, bad := range []string{"", "x", token[:len(token)-1], token + "A", flip(5), flip(12), flip(len(token) - 1)} {
			require.ErrorIs(t, signer.Verify(7, bad), live.ErrTokenInvalid, bad)
		}
	})

	t.Run("ShortSecretRefused", func(t *testing.T) {
		t.Parallel()
		_, err := live.NewTokenSigner([]byte("short"), 0, nil)
		require.Error(t, err)
	})
}
