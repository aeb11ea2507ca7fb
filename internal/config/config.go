// Package config is Handoff's configuration in one place: the options table
// (every environment variable with its default, meaning and validation),
// the Config it fills, and the masked listing that `handoff config` prints.
// The server, the README's table (checked by a test) and cmd/bench all read
// this table; adding a variable is one entry in Options plus its field.
//
// The package never reads the process environment itself: callers pass a
// getenv function (os.Getenv in main, a map in tests).
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/handoff/handoff/internal/safehttp"
	"github.com/handoff/handoff/internal/webhook"
)

// Config is everything the environment sets, one field per variable. The
// options table in options.go documents each one.
type Config struct {
	DatabaseURL     string
	HTTPAddr        string
	AutoMigrate     bool
	Workers         int
	Queues          map[string]int
	RescueAfter     time.Duration
	ShutdownTimeout time.Duration
	// AuthDisabled is nil when AUTH_DISABLED is unset (see AuthMode).
	AuthDisabled        *bool
	AuthDisabledAnyAddr bool
	AllowedHosts        []string
	RateLimit           int
	RateBurst           int
	MaxUnfinished       int
	MaxArgsBytes        int
	EnqueueBatchMax     int
	ReadHeaderTimeout   time.Duration
	ReadTimeout         time.Duration
	IdleTimeout         time.Duration
	MaxHeaderBytes      int
	StatementTimeout    time.Duration
	FetchCooldown       time.Duration
	FetchPollInterval   time.Duration
	InlineCompleteBelow int
	// GCPercent is the Go GC target serve runs with (GOGC; -1 is off).
	GCPercent          int
	DBMaxConns         int
	RequestTimeout     time.Duration
	CompletedRetention time.Duration
	LogLevel           slog.Level
	LogFormat          string
	AdminUser          string
	AdminPassword      string
	AdminReadOnly      bool
	MetricsEnabled     bool
	MetricsPublic      bool
	MetricsInterval    time.Duration
	TracesExporter     string

	// WebhookSecret signs http tasks and callbacks (Standard Webhooks);
	// WebhookSecretPrevious signs too during a rotation. Zero: unsigned.
	WebhookSecret         webhook.Secret
	WebhookSecretPrevious webhook.Secret
	// HTTPTaskAllow lists the non-public targets http tasks may reach.
	HTTPTaskAllow *safehttp.AllowList

	// LiveSecret keys per-task read tokens (docs/live.md); empty means a
	// random key per process. LiveMaxStreams caps a process's event
	// streams and ?wait= requests, LiveMaxStreamsPerTenant one tenant's
	// (0: EffectiveLiveMaxStreamsPerTenant's default).
	LiveSecret              string
	LiveMaxStreams          int
	LiveMaxStreamsPerTenant int

	// PublicURL is where http tasks' receivers reach this server to report
	// progress; empty means the listen address.
	PublicURL string
}

// MaxWorkers is River's limit on a queue's MaxWorkers: a client above it
// does not start.
const MaxWorkers = river.QueueNumWorkersMax

// DefaultGCPercent is the GOGC serve sets when the environment sets none:
// fewer collections for a larger heap (docs/performance.md, "GOGC").
const DefaultGCPercent = 400

// DefaultWorkers is WORKERS when unset: 250 per CPU, within River's limit,
// so that a many-core host without WORKERS still starts.
func DefaultWorkers(cpus int) int {
	return min(250*cpus, MaxWorkers)
}

// Parse reads every option through getenv, applies the defaults and reports
// every bad value at once.
func Parse(getenv func(string) string) (*Config, error) {
	p := &parser{getenv: getenv}
	cfg := &Config{}
	for _, o := range Options() {
		o.parse(p, cfg)
	}
	p.errs = append(p.errs, validate(cfg)...)
	if err := errors.Join(p.errs...); err != nil {
		return nil, fmt.Errorf("bad configuration:\n%w", err)
	}
	return cfg, nil
}

// Defaults returns the configuration of an empty environment, without
// validation (DATABASE_URL stays empty). cmd/bench starts from it.
func Defaults() *Config {
	p := &parser{getenv: func(string) string { return "" }}
	cfg := &Config{}
	for _, o := range Options() {
		o.parse(p, cfg)
	}
	return cfg
}

// validate checks what spans several options or needs more than a type.
func validate(cfg *Config) []error {
	var errs []error
	if cfg.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is not set: give a Postgres URL, e.g. postgres://user@localhost:5432/handoff; for the project's local Postgres use DATABASE_URL=$(make -s db/url) (`make run` sets it for you)"))
	}
	if cfg.FetchPollInterval < cfg.FetchCooldown {
		errs = append(errs, fmt.Errorf("FETCH_POLL_INTERVAL=%s: must not be shorter than FETCH_COOLDOWN=%s", cfg.FetchPollInterval, cfg.FetchCooldown))
	}
	if cfg.LiveSecret != "" && len(cfg.LiveSecret) < 32 {
		errs = append(errs, errors.New("LIVE_SECRET: must be at least 32 characters, e.g. from `openssl rand -hex 32`"))
	}
	if cfg.WebhookSecret.IsZero() && !cfg.WebhookSecretPrevious.IsZero() {
		errs = append(errs, errors.New("WEBHOOK_SECRET_PREVIOUS is set but WEBHOOK_SECRET is not: set the new secret in WEBHOOK_SECRET and keep the old one in WEBHOOK_SECRET_PREVIOUS while receivers switch"))
	}
	if cfg.AuthDisabled != nil && *cfg.AuthDisabled && !cfg.AuthDisabledAnyAddr && !IsLoopback(cfg.HTTPAddr) {
		errs = append(errs, fmt.Errorf("AUTH_DISABLED=true with HTTP_ADDR=%s would serve every task to anyone who reaches that address: listen on loopback (127.0.0.1:8080), or create an API key (`handoff keys create --tenant NAME`), or, behind your own gateway, set AUTH_DISABLED_ANY_ADDR=true", cfg.HTTPAddr))
	}
	if cfg.LiveMaxStreamsPerTenant > cfg.LiveMaxStreams {
		errs = append(errs, fmt.Errorf("LIVE_MAX_STREAMS_PER_TENANT=%d: must not be more than LIVE_MAX_STREAMS=%d (equal to it lets one tenant take every stream)", cfg.LiveMaxStreamsPerTenant, cfg.LiveMaxStreams))
	}
	if (cfg.AdminUser == "") != (cfg.AdminPassword == "") {
		errs = append(errs, errors.New("ADMIN_USER and ADMIN_PASSWORD: set both (operator access) or neither (operator routes refused)"))
	}
	return errs
}

// IsLoopback reports whether a listen address (host:port) accepts only
// loopback connections: a loopback IP or "localhost". An empty or
// unspecified host listens everywhere.
func IsLoopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// EffectiveRateBurst is the token bucket's size serve uses: RATE_BURST, or
// twice RATE_LIMIT when RATE_BURST is unset or 0.
func (cfg *Config) EffectiveRateBurst() int {
	return cmp.Or(cfg.RateBurst, 2*cfg.RateLimit)
}

// EffectiveLiveMaxStreamsPerTenant is the streams one tenant may have open
// in a process: LIVE_MAX_STREAMS_PER_TENANT, or nine tenths of
// LIVE_MAX_STREAMS (at least 1) when it is unset or 0, so that one tenant
// never takes the last tenth and a deployment of one tenant keeps most of
// the process's streams.
func (cfg *Config) EffectiveLiveMaxStreamsPerTenant() int {
	return cmp.Or(cfg.LiveMaxStreamsPerTenant, max(1, cfg.LiveMaxStreams*9/10))
}

// EffectivePublicURL is the base URL http tasks' receivers report progress
// to: PUBLIC_URL, or else ListenURL of HTTP_ADDR. serve uses ListenURL of
// the address it actually listens on, which differs only when HTTP_ADDR's
// port is 0 (picked at start).
func (cfg *Config) EffectivePublicURL() string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return ""
	}
	return ListenURL(host, port)
}

// ListenURL is the http URL of a listen address, whose unspecified host
// (empty, 0.0.0.0 or ::) is reached on the loopback address.
func ListenURL(host, port string) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// AuthMode is how the API treats requests without a key.
type AuthMode int

const (
	// AuthRequired means every /v1 request needs a key.
	AuthRequired AuthMode = iota
	// AuthDisabled means requests without a key act for the default tenant.
	AuthDisabled
	// AuthUntilKeys means open until the first key is made (loopback only).
	AuthUntilKeys
)

// AuthMode decides how the API treats requests without a key:
// AUTH_DISABLED=true disables keys (validate refused it beyond loopback
// unless AUTH_DISABLED_ANY_ADDR), false requires them, and unset requires
// them on any address but loopback, and on loopback once a key exists.
func (cfg *Config) AuthMode() AuthMode {
	switch {
	case cfg.AuthDisabled != nil && *cfg.AuthDisabled:
		return AuthDisabled
	case cfg.AuthDisabled != nil, !IsLoopback(cfg.HTTPAddr):
		return AuthRequired
	default:
		return AuthUntilKeys
	}
}

// Print writes the parsed configuration, one NAME=value line per option in
// table order, each value as serve uses it (a default computed from other
// options, such as RATE_BURST's, printed as computed), with secrets masked:
// a secret option prints as "(set, hidden)", and DATABASE_URL keeps
// everything but its secrets (MaskPassword).
func Print(w io.Writer, getenv func(string) string, cfg *Config) error {
	for _, o := range Options() {
		value := o.value(cfg)
		switch {
		case o.Secret && value != "":
			value = "(set, hidden)"
		case o.Name == "DATABASE_URL":
			value = MaskPassword(value)
		}
		source := "default"
		if getenv(o.Name) != "" {
			source = "env"
		}
		if _, err := fmt.Fprintf(w, "%s=%s\t# %s\n", o.Name, value, source); err != nil {
			return fmt.Errorf("print configuration: %w", err)
		}
	}
	return nil
}

// secretParams are the libpq connection parameters that hold a secret:
// the password and the passphrase of the client certificate's key. Every
// other parameter names a file, host, mode or setting.
var secretParams = []string{"password", "sslpassword"}

var keywordPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// MaskPassword hides the secrets of a Postgres connection string, in URL or
// keyword/value form — the password (in a URL's userinfo or its query) and
// sslpassword — and keeps the rest (host, port, user, database, options)
// for an operator to check.
func MaskPassword(conn string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "(unparsable, hidden)"
		}
		q := u.Query()
		masked := false
		for name := range q {
			for _, secret := range secretParams {
				if strings.EqualFold(name, secret) {
					q[name] = []string{"xxxxx"}
					masked = true
				}
			}
		}
		if masked {
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return keywordPassword.ReplaceAllString(conn, "${1}xxxxx")
}

// cpus is the CPU count WORKERS' default is sized by.
func cpus() int { return runtime.GOMAXPROCS(0) }
