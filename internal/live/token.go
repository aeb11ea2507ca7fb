package live

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"time"
)

// ErrTokenInvalid is returned for a read token that is malformed, was made
// for another task or by another secret, or has expired.
var ErrTokenInvalid = errors.New("read token is invalid or expired")

// TokenTTLDefault is how long a read token is good for unless TokenSigner
// says otherwise.
const TokenTTLDefault = time.Hour

// tokenMACBytes is the kept prefix of the HMAC-SHA256: 128 bits.
const tokenMACBytes = 16

// TokenSigner makes and checks per-task read tokens: a browser holds one
// instead of an API key, and it opens one task's page and event stream, and
// nothing else, until it expires. A token is base64url(expiry as 8 bytes of
// Unix seconds ‖ the first 16 bytes of HMAC-SHA256(secret, "handoff-read:"
// ‖ task id ‖ ":" ‖ expiry)). It is stateless: any replica with the same
// secret accepts it; it cannot be revoked before it expires.
type TokenSigner struct {
	secret  []byte
	ttl     time.Duration
	nowFunc func() time.Time
}

// NewTokenSigner returns a signer over secret (at least 32 bytes). ttl ≤ 0
// means TokenTTLDefault; nowFunc nil means time.Now.
func NewTokenSigner(secret []byte, ttl time.Duration, nowFunc func() time.Time) (*TokenSigner, error) {
	if len(secret) < 32 {
		return nil, errors.New("read token secret must be at least 32 bytes")
	}
	if ttl <= 0 {
		ttl = TokenTTLDefault
	}
	if nowFunc == nil {
		nowFunc = time.Now
	}
	return &TokenSigner{secret: append([]byte(nil), secret...), ttl: ttl, nowFunc: nowFunc}, nil
}

// Sign returns a read token for taskID that expires after the signer's TTL.
func (s *TokenSigner) Sign(taskID int64) string {
	return s.sign(readScope(taskID), s.ttl)
}

// Verify returns nil when token was signed for taskID and has not expired,
// else ErrTokenInvalid.
func (s *TokenSigner) Verify(taskID int64, token string) error {
	return s.verify(readScope(taskID), token)
}

// SignProgress returns a token that lets the receiver of an http task report
// the progress of attempt of taskID, for validFor: a write token, scoped
// apart from read tokens ("handoff-progress:"), so neither opens the other.
func (s *TokenSigner) SignProgress(taskID int64, attempt int, validFor time.Duration) string {
	return s.sign(progressScope(taskID, attempt), validFor)
}

// VerifyProgress returns nil when token was made by SignProgress for this
// task and attempt and has not expired, else ErrTokenInvalid.
func (s *TokenSigner) VerifyProgress(taskID int64, attempt int, token string) error {
	return s.verify(progressScope(taskID, attempt), token)
}

func readScope(taskID int64) string {
	return "handoff-read:" + strconv.FormatInt(taskID, 10)
}

func progressScope(taskID int64, attempt int) string {
	return "handoff-progress:" + strconv.FormatInt(taskID, 10) + ":" + strconv.Itoa(attempt)
}

// sign makes a token for scope that expires after validFor:
// base64url(expiry as 8 bytes of Unix seconds ‖ mac(scope, expiry)).
func (s *TokenSigner) sign(scope string, validFor time.Duration) string {
	expiry := s.nowFunc().Add(validFor).Unix()
	buf := make([]byte, 8, 8+tokenMACBytes)
	binary.BigEndian.PutUint64(buf, uint64(expiry)) //nolint:gosec // a Unix time after 1970
	buf = append(buf, s.mac(scope, expiry)...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// verify checks a token made by sign for scope.
func (s *TokenSigner) verify(scope, token string) error {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 8+tokenMACBytes {
		return ErrTokenInvalid
	}
	expiry := int64(binary.BigEndian.Uint64(raw[:8])) //nolint:gosec // compared, never used as a size
	if !hmac.Equal(raw[8:], s.mac(scope, expiry)) || s.nowFunc().Unix() >= expiry {
		return ErrTokenInvalid
	}
	return nil
}

func (s *TokenSigner) mac(scope string, expiry int64) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte(scope + ":" + strconv.FormatInt(expiry, 10)))
	return h.Sum(nil)[:tokenMACBytes]
}
