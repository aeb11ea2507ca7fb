// Package auth holds Handoff's API keys: their format, how they are made and
// stored (a SHA-256 and a public prefix, never the key), and the
// Authenticator that turns a request's bearer key into its tenant.
//
// A key reads "hnd_<prefix>_<secret>": a 12-character prefix, public, kept
// for lookup, display and revocation, and 43 characters of secret (32 random
// bytes, base64url). The database keeps SHA-256 of the whole key; the
// Authenticator compares it in constant time.
//
// Revocation reaches every replica within the cache's TTL (KeyCacheTTL by
// default): each process remembers a looked-up prefix, found or not, for
// that long, and then asks Postgres again.
package auth

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/handoff/handoff/internal/store"
)

// DefaultTenant owns tasks made without a key: with AUTH_DISABLED, and by
// SQL or Go enqueue calls that name no tenant.
const DefaultTenant = "default"

// KeyCacheTTL is how long a process trusts what it looked up about a key:
// the longest a revoked key keeps working on a replica.
const KeyCacheTTL = 5 * time.Second

const (
	keyPrefix    = "hnd_"
	prefixLen    = 12
	secretBytes  = 32
	maxCacheKeys = 100_000
)

var (
	// ErrUnauthenticated is every reason a request's key is refused:
	// missing, malformed, unknown or revoked. One error, one answer, so the
	// answer says nothing about which.
	ErrUnauthenticated = errors.New("a valid API key is required: send Authorization: Bearer <key>")

	// ErrKeyNotFound means no key has the prefix (for keys revoke).
	ErrKeyNotFound = errors.New("no API key has this prefix")

	prefixAlpha = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
)

// ValidTenant reports whether name can name a tenant: 1 to 63 characters of
// lower-case letters, digits, '-' and '_', starting with a letter or digit.
//
// It is called for each task created (a batch's 1,000 spent 2% of the
// server's CPU in the regular expression ^[a-z0-9][a-z0-9_-]{0,62}$ this
// loop replaces; TestValidTenant holds the two to the same answers).
func ValidTenant(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := range len(name) {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Key is an API key as stored and listed: never the key itself.
type Key struct {
	Prefix     string
	Tenant     string
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

func keyFromRow(row *store.APIKey) *Key {
	return &Key{
		Prefix: row.Prefix, Tenant: row.Tenant, Name: row.Name,
		CreatedAt: row.CreatedAt, LastUsedAt: row.LastUsedAt, RevokedAt: row.RevokedAt,
	}
}

func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// parseKey splits a key into its prefix, or reports that it is not one.
func parseKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok || len(rest) != prefixLen+1+base64.RawURLEncoding.EncodedLen(secretBytes) || rest[prefixLen] != '_' {
		return "", false
	}
	return rest[:prefixLen], true
}

// Create makes a new key for tenant, stores its hash and returns the key,
// which is shown this once, and its record.
func Create(ctx context.Context, db store.DBTX, tenant, name string) (string, *Key, error) {
	if !ValidTenant(tenant) {
		return "", nil, fmt.Errorf("tenant %q is not valid: use 1 to 63 lower-case letters, digits, '-' or '_'", tenant)
	}
	if len([]rune(name)) > 200 {
		return "", nil, errors.New("name is longer than 200 characters")
	}
	raw := make([]byte, 8+secretBytes)
	_, _ = rand.Read(raw) // never fails (crypto/rand since Go 1.24)
	prefix := prefixAlpha.EncodeToString(raw[:8])[:prefixLen]
	key := keyPrefix + prefix + "_" + base64.RawURLEncoding.EncodeToString(raw[8:])
	row, err := store.New().APIKeyInsert(ctx, db, store.APIKeyInsertParams{Prefix: prefix, KeyHash: hashKey(key), Tenant: tenant, Name: name})
	if err != nil {
		return "", nil, fmt.Errorf("store key: %w", err)
	}
	return key, keyFromRow(row), nil
}

// List returns every key, revoked ones included, oldest first.
func List(ctx context.Context, db store.DBTX) ([]*Key, error) {
	rows, err := store.New().APIKeyList(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys := make([]*Key, len(rows))
	for i, row := range rows {
		keys[i] = keyFromRow(row)
	}
	return keys, nil
}

// Revoke revokes the key with prefix (a whole key is accepted too, and cut
// to its prefix). Revoking a revoked key changes nothing.
//
// Errors: ErrKeyNotFound.
func Revoke(ctx context.Context, db store.DBTX, prefix string) (*Key, error) {
	if p, ok := parseKey(prefix); ok {
		prefix = p
	}
	row, err := store.New().APIKeyRevoke(ctx, db, prefix)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("revoke key: %w", err)
	}
	return keyFromRow(row), nil
}

// AnyActive reports whether any key is not revoked: once one exists, the
// API needs keys unless AUTH_DISABLED says otherwise.
func AnyActive(ctx context.Context, db store.DBTX) (bool, error) {
	exists, err := store.New().APIKeyActiveExists(ctx, db)
	if err != nil {
		return false, fmt.Errorf("look for keys: %w", err)
	}
	return exists, nil
}

// AnyExists reports whether a key was ever made, revoked or not.
func AnyExists(ctx context.Context, db store.DBTX) (bool, error) {
	exists, err := store.New().APIKeyAnyExists(ctx, db)
	if err != nil {
		return false, fmt.Errorf("look for keys: %w", err)
	}
	return exists, nil
}

// DB is what the Authenticator needs of a pool.
type DB interface {
	store.DBTX
}

// Authenticator turns bearer keys into tenants, with a short cache.
type Authenticator struct {
	db     DB
	ttl    time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu      sync.Mutex
	cache   map[string]cached    // by prefix
	touched map[string]time.Time // by prefix: when this process last recorded a use
	// keysExist is sticky once true; until then keysChecked says when it
	// was last asked.
	keysExist   bool
	keysChecked time.Time
}

type cached struct {
	hash    []byte // nil when no usable key has the prefix
	tenant  string
	expires time.Time
}

// AuthenticatorOpts are optional settings; nil means defaults.
type AuthenticatorOpts struct {
	// TTL is how long a lookup is trusted. Defaults to KeyCacheTTL.
	TTL time.Duration
	// NowFunc defaults to time.Now.
	NowFunc func() time.Time
	// Logger receives failures to record a key's last use.
	Logger *slog.Logger
}

// NewAuthenticator returns an Authenticator reading keys from db.
func NewAuthenticator(db DB, opts *AuthenticatorOpts) *Authenticator {
	if opts == nil {
		opts = &AuthenticatorOpts{}
	}
	a := &Authenticator{
		db:      db,
		ttl:     cmp.Or(opts.TTL, KeyCacheTTL),
		now:     opts.NowFunc,
		logger:  cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		cache:   map[string]cached{},
		touched: map[string]time.Time{},
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// KeysExist reports whether any key was ever made (revoked ones count), as
// of at most the cache's TTL ago. Once true it stays true for the process:
// revoking every key never opens the API again.
func (a *Authenticator) KeysExist(ctx context.Context) (bool, error) {
	now := a.now()
	a.mu.Lock()
	exists, fresh := a.keysExist, now.Sub(a.keysChecked) < a.ttl
	a.mu.Unlock()
	if exists || fresh {
		return exists, nil
	}
	exists, err := AnyExists(ctx, a.db)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	a.keysExist = a.keysExist || exists
	a.keysChecked = now
	a.mu.Unlock()
	return exists, nil
}

// dummyHash is compared against when a prefix has no key, so that an
// unknown key costs the same comparison as a known one.
var dummyHash = hashKey("hnd_dummy")

// Authenticate returns the tenant of the key in an Authorization header
// value ("Bearer <key>").
//
// Errors: ErrUnauthenticated for any key that is not valid now, or an error
// from Postgres (which is not the client's fault).
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (string, error) {
	scheme, key, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrUnauthenticated
	}
	prefix, ok := parseKey(key)
	if !ok {
		return "", ErrUnauthenticated
	}
	entry, err := a.lookup(ctx, prefix)
	if err != nil {
		return "", err
	}
	want := entry.hash
	if want == nil {
		want = dummyHash
	}
	if subtle.ConstantTimeCompare(hashKey(key), want) != 1 || entry.hash == nil {
		return "", ErrUnauthenticated
	}
	a.touch(ctx, prefix)
	return entry.tenant, nil
}

// lookup returns what is known about prefix: from the cache while fresh,
// else from Postgres. Unknown and revoked prefixes are cached as well, so a
// prefix that exists and one that does not take the same path.
func (a *Authenticator) lookup(ctx context.Context, prefix string) (cached, error) {
	now := a.now()
	a.mu.Lock()
	entry, ok := a.cache[prefix]
	a.mu.Unlock()
	if ok && now.Before(entry.expires) {
		return entry, nil
	}
	row, err := store.New().APIKeyGetByPrefix(ctx, a.db, prefix)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		entry = cached{}
	case err != nil:
		return cached{}, fmt.Errorf("look up key: %w", err)
	case row.RevokedAt != nil:
		entry = cached{}
	default:
		entry = cached{hash: row.KeyHash, tenant: row.Tenant}
	}
	entry.expires = now.Add(a.ttl)
	a.mu.Lock()
	if len(a.cache) >= maxCacheKeys {
		// Bounded memory against a flood of made-up prefixes.
		clear(a.cache)
	}
	a.cache[prefix] = entry
	a.mu.Unlock()
	return entry, nil
}

// touch records a key's last use, at most once a minute per key (the query
// skips fresher rows), off the request's path and best effort.
func (a *Authenticator) touch(ctx context.Context, prefix string) {
	now := a.now()
	a.mu.Lock()
	last, seen := a.touched[prefix]
	if seen && now.Sub(last) < time.Minute {
		a.mu.Unlock()
		return
	}
	if len(a.touched) >= maxCacheKeys {
		clear(a.touched)
	}
	a.touched[prefix] = now
	a.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := store.New().APIKeyTouch(ctx, a.db, prefix); err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
				a.logger.DebugContext(ctx, "record key use", slog.String("prefix", prefix), slog.Any("error", err))
			}
		}
	}()
}
