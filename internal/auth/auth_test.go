package auth_test

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/auth"
	"github.com/handoff/handoff/internal/pgtest"
)

// fakeClock is the test's time, moved by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestKeys(t *testing.T) {
	t.Parallel()

	t.Run("CreateAuthenticateRevoke", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool := pgtest.NewDB(t)
		clock := &fakeClock{now: time.Now()}
		a := auth.NewAuthenticator(pool, &auth.AuthenticatorOpts{NowFunc: clock.Now})

		active, err := auth.AnyActive(ctx, pool)
		require.NoError(t, err)
		require.False(t, active)

		key, rec, err := auth.Create(ctx, pool, "acme", "ci")
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(key, "hnd_"+rec.Prefix+"_"), key)
		require.Len(t, key, len("hnd_")+12+1+43)

		tenant, err := a.Authenticate(ctx, "Bearer "+key)
		require.NoError(t, err)
		require.Equal(t, "acme", tenant)
		tenant, err = a.Authenticate(ctx, "bearer "+key)
		require.NoError(t, err, "the scheme is case-insensitive (RFC 9110)")
		require.Equal(t, "acme", tenant)

		var stored []byte
		require.NoError(t, pool.QueryRow(ctx, "SELECT key_hash FROM api_keys WHERE prefix = $1", rec.Prefix).Scan(&stored))
		require.Len(t, stored, 32)
		require.NotContains(t, string(stored), key[len("hnd_")+13:], "only the hash is stored")

		active, err = auth.AnyActive(ctx, pool)
		require.NoError(t, err)
		require.True(t, active)

		revoked, err := auth.Revoke(ctx, pool, rec.Prefix)
		require.NoError(t, err)
		require.NotNil(t, revoked.RevokedAt)
		// Within the cache's TTL the revocation may not be seen yet; after
		// it, it is.
		clock.Add(auth.KeyCacheTTL + time.Millisecond)
		_, err = a.Authenticate(ctx, "Bearer "+key)
		require.ErrorIs(t, err, auth.ErrUnauthenticated)

		_, err = auth.Revoke(ctx, pool, "nosuchprefix")
		require.ErrorIs(t, err, auth.ErrKeyNotFound)

		keys, err := auth.List(ctx, pool)
		require.NoError(t, err)
		require.Len(t, keys, 1)
		require.Equal(t, rec.Prefix, keys[0].Prefix)
		require.NotNil(t, keys[0].RevokedAt)
	})

	t.Run("RefusesEveryBadKeyAlike", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool := pgtest.NewDB(t)
		a := auth.NewAuthenticator(pool, nil)
		key, rec, err := auth.Create(ctx, pool, "acme", "")
		require.NoError(t, err)
		other, _, err := auth.Create(ctx, pool, "acme", "")
		require.NoError(t, err)

		// The same key with its last character changed.
		last := "A"
		if strings.HasSuffix(key, "A") {
			last = "B"
		}
		tampered := key[:len(key)-1] + last
		for name, header := range map[string]string{
			"Missing":          "",
			"NoScheme":         key,
			"Basic":            "Basic " + key,
			"TwoSpaces":        "Bearer  " + key,
			"Truncated":        "Bearer " + key[:len(key)-1],
			"WrongSecret":      "Bearer " + tampered,
			"OtherKeysSecret":  "Bearer hnd_" + rec.Prefix + other[len("hnd_")+12:],
			"UnknownPrefix":    "Bearer hnd_aaaaaaaaaaaa" + key[len("hnd_")+12:],
			"NotAKey":          "Bearer hello",
			"TrailingGarbage":  "Bearer " + key + "x",
			"PrefixOnly":       "Bearer hnd_" + rec.Prefix,
			"ControlCharacter": "Bearer " + key[:20] + "\x00" + key[21:],
		} {
			_, err := a.Authenticate(ctx, header)
			require.ErrorIs(t, err, auth.ErrUnauthenticated, name)
		}
	})

	t.Run("BadTenantOrName", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool := pgtest.NewDB(t)
		for _, tenant := range []string{"", "Acme", "a b", "-x", strings.Repeat("a", 64), "ünï"} {
			_, _, err := auth.Create(ctx, pool, tenant, "")
			require.Error(t, err, tenant)
		}
		_, _, err := auth.Create(ctx, pool, "acme", strings.Repeat("n", 201))
		require.Error(t, err)
		keys, err := auth.List(ctx, pool)
		require.NoError(t, err)
		require.Empty(t, keys, "a refused key writes nothing")
	})
}

// TestKeysExist: the answer is cached for the TTL, and once a key was made
// it stays true, revoked or not.
func TestKeysExist(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	clock := &fakeClock{now: time.Now()}
	a := auth.NewAuthenticator(pool, &auth.AuthenticatorOpts{NowFunc: clock.Now})

	exists, err := a.KeysExist(ctx)
	require.NoError(t, err)
	require.False(t, exists)

	_, rec, err := auth.Create(ctx, pool, "acme", "")
	require.NoError(t, err)
	exists, err = a.KeysExist(ctx)
	require.NoError(t, err)
	require.False(t, exists, "cached for the TTL")

	_, err = auth.Revoke(ctx, pool, rec.Prefix)
	require.NoError(t, err)
	clock.Add(auth.KeyCacheTTL)
	exists, err = a.KeysExist(ctx)
	require.NoError(t, err)
	require.True(t, exists, "a revoked key still counts: revoking every key never reopens the API")
	active, err := auth.AnyActive(ctx, pool)
	require.NoError(t, err)
	require.False(t, active)
}

// TestValidTenant: the tenant check gives the answers of the regular
// expression it replaced, at the edges of each rule.
func TestValidTenant(t *testing.T) {
	t.Parallel()
	pattern := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	long := strings.Repeat("a", 63)
	for _, name := range []string{
		"", "a", "0", "default", "a-b_c9", "-a", "_a", "a-", "a_", "A", "aB", "a b", "a.b", "é", "a\n", "a\x00",
		long, long + "a", "z" + strings.Repeat("-", 62), "9" + strings.Repeat("_", 63), "{", "`", "/", ":", "@", "[",
	} {
		require.Equal(t, pattern.MatchString(name), auth.ValidTenant(name), "%q", name)
	}
}
