// Package webhook signs outgoing HTTP requests per the Standard Webhooks
// specification (https://www.standardwebhooks.com): every request carries
// webhook-id, webhook-timestamp and webhook-signature, the last being
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" under each secret in use,
// space-separated, so that a receiver keeps verifying while a secret is
// rotated.
//
// It signs only; receivers verify with any Standard Webhooks library (the
// tests do, with the reference one).
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks header names, as the specification spells them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret's text form.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest key accepted, the lower end of the
// specification's recommended 24 to 64 bytes.
const MinSecretBytes = 24

// Secret is an HMAC key. Its String and LogValue never show the key.
type Secret struct {
	key []byte
}

// ParseSecret reads the text form "whsec_" + standard base64 of the key, as
// Standard Webhooks libraries print and accept it. The key must be at least
// MinSecretBytes long.
func ParseSecret(s string) (Secret, error) {
	encoded, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return Secret{}, fmt.Errorf("a secret starts with %q followed by base64", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return Secret{}, errors.New("the part after whsec_ is not standard base64")
	}
	if len(key) < MinSecretBytes {
		return Secret{}, fmt.Errorf("the key is %d bytes, fewer than %d (make one with: echo whsec_$(openssl rand -base64 32))", len(key), MinSecretBytes)
	}
	return Secret{key: key}, nil
}

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// String hides the key.
func (s Secret) String() string {
	if s.IsZero() {
		return ""
	}
	return SecretPrefix + "[redacted]"
}

// GoString hides the key from %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue hides the key from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// sign returns "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
func (s Secret) sign(id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Signer signs with one or more secrets: the current one, then any still
// accepted during a rotation. A nil *Signer signs nothing.
type Signer struct {
	secrets []Secret
}

// NewSigner returns a Signer for current and, during a rotation, the
// previous secrets; zero secrets among them are skipped. With no secret at
// all it returns nil, which signs nothing.
func NewSigner(current Secret, previous ...Secret) *Signer {
	var secrets []Secret
	for _, s := range append([]Secret{current}, previous...) {
		if !s.IsZero() {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		return nil
	}
	return &Signer{secrets: secrets}
}

// Signature is the webhook-signature value for a message: one "v1,..."
// per secret, space-separated, the current secret's first.
func (s *Signer) Signature(id string, timestamp time.Time, body []byte) string {
	sigs := make([]string, len(s.secrets))
	for i, secret := range s.secrets {
		sigs[i] = secret.sign(id, timestamp.Unix(), body)
	}
	return strings.Join(sigs, " ")
}

// Sign sets the three Standard Webhooks headers on h for a message with
// this id, sent at timestamp, whose body is exactly body. A nil Signer sets
// webhook-id and webhook-timestamp only, so receivers can still
// deduplicate.
func (s *Signer) Sign(h http.Header, id string, timestamp time.Time, body []byte) {
	// Header names are case-insensitive; Set writes them canonically
	// (Webhook-Id), as every receiver's http.Header.Get expects.
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(timestamp.Unix(), 10))
	h.Del(HeaderSignature)
	if s == nil {
		return
	}
	h.Set(HeaderSignature, s.Signature(id, timestamp, body))
}
