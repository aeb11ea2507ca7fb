package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/safehttp"
	"github.com/handoff/handoff/internal/webhook"
)

// Option is one environment variable: its name, its default and meaning as
// the README's table shows them, whether its value is a secret, and how it
// is parsed into Config.
type Option struct {
	// Name is the environment variable.
	Name string
	// Default is the default as documentation shows it.
	Default string
	// Meaning is one line for the README's table.
	Meaning string
	// Secret options print masked in `handoff config`.
	Secret bool

	parse func(p *parser, cfg *Config)
	value func(cfg *Config) string
}

// Options is the table of every variable, in the README's order. Adding a
// variable is one entry here plus its Config field.
func Options() []Option {
	return []Option{
		{
			Name: "DATABASE_URL", Default: "(required; `make` sets it)", Meaning: "Postgres connection string (`handoff config` masks its password and `sslpassword`)",
			parse: func(p *parser, c *Config) { c.DatabaseURL = p.str("DATABASE_URL", "") },
			value: func(c *Config) string { return c.DatabaseURL },
		},
		{
			Name: "HTTP_ADDR", Default: "`127.0.0.1:8080`", Meaning: "listen address",
			parse: func(p *parser, c *Config) { c.HTTPAddr = p.hostPort("HTTP_ADDR", "127.0.0.1:8080") },
			value: func(c *Config) string { return c.HTTPAddr },
		},
		{
			Name: "AUTO_MIGRATE", Default: "`false`", Meaning: "`serve` applies pending migrations first, under an advisory lock",
			parse: func(p *parser, c *Config) { c.AutoMigrate = p.boolean("AUTO_MIGRATE", false) },
			value: func(c *Config) string { return strconv.FormatBool(c.AutoMigrate) },
		},
		{
			Name: "WORKERS", Default: "250 per CPU, at most 10000", Meaning: "River MaxWorkers of the `default` queue (bigger batches drain a backlog faster; [measured](docs/performance.md))",
			parse: func(p *parser, c *Config) {
				c.Workers = p.integer("WORKERS", DefaultWorkers(cpus()), 1, MaxWorkers)
			},
			value: func(c *Config) string { return strconv.Itoa(c.Workers) },
		},
		{
			Name: "QUEUES", Default: "none", Meaning: "extra queues and their workers: `emails=10,reports=2`",
			parse: func(p *parser, c *Config) { c.Queues = p.queues("QUEUES") },
			value: func(c *Config) string {
				var items []string
				for _, name := range slices.Sorted(maps.Keys(c.Queues)) {
					items = append(items, name+"="+strconv.Itoa(c.Queues[name]))
				}
				return strings.Join(items, ",")
			},
		},
		{
			Name: "RESCUE_AFTER", Default: "`2m`", Meaning: "a task whose process died runs again after this (River's rescuer checks every 30 s)",
			parse: func(p *parser, c *Config) {
				c.RescueAfter = p.duration("RESCUE_AFTER", 2*time.Minute, time.Second)
			},
			value: func(c *Config) string { return c.RescueAfter.String() },
		},
		{
			Name: "SHUTDOWN_TIMEOUT", Default: "`30s`", Meaning: "on SIGTERM, running tasks get this long to finish, then are cancelled and retried later",
			parse: func(p *parser, c *Config) {
				c.ShutdownTimeout = p.duration("SHUTDOWN_TIMEOUT", 30*time.Second, 0)
			},
			value: func(c *Config) string { return c.ShutdownTimeout.String() },
		},
		{
			Name: "AUTH_DISABLED", Default: "unset: `false` once API keys exist", Meaning: "`true` serves `/v1` without `Authorization: Bearer <key>` as the `default` tenant (local development; refused unless `HTTP_ADDR` is loopback or `AUTH_DISABLED_ANY_ADDR=true`); `false` always needs a key; unset, keys are needed once one was made, or always when `HTTP_ADDR` is not loopback ([docs/security.md](docs/security.md))",
			parse: func(p *parser, c *Config) { c.AuthDisabled = p.optionalBool("AUTH_DISABLED") },
			value: func(c *Config) string {
				if c.AuthDisabled == nil {
					return ""
				}
				return strconv.FormatBool(*c.AuthDisabled)
			},
		},
		{
			Name: "AUTH_DISABLED_ANY_ADDR", Default: "`false`", Meaning: "`true` lets `AUTH_DISABLED=true` serve on an address beyond loopback (an open server: only behind your own gateway)",
			parse: func(p *parser, c *Config) { c.AuthDisabledAnyAddr = p.boolean("AUTH_DISABLED_ANY_ADDR", false) },
			value: func(c *Config) string { return strconv.FormatBool(c.AuthDisabledAnyAddr) },
		},
		{
			Name: "ALLOWED_HOSTS", Default: "none", Meaning: "comma-separated host names a `Host` header may name while keys are not required, besides loopback, `localhost` and `HTTP_ADDR`'s host (anything else is refused: DNS rebinding)",
			parse: func(p *parser, c *Config) { c.AllowedHosts = p.list("ALLOWED_HOSTS") },
			value: func(c *Config) string { return strings.Join(c.AllowedHosts, ",") },
		},
		{
			Name: "RATE_LIMIT", Default: "`1000`", Meaning: "requests per second per tenant on each replica (token bucket); more get `429` with `Retry-After`; `0` turns it off",
			parse: func(p *parser, c *Config) { c.RateLimit = p.integer("RATE_LIMIT", 1000, 0, 1_000_000) },
			value: func(c *Config) string { return strconv.Itoa(c.RateLimit) },
		},
		{
			Name: "RATE_BURST", Default: "twice `RATE_LIMIT`", Meaning: "the token bucket's size: requests a tenant may send at once after a quiet spell",
			parse: func(p *parser, c *Config) { c.RateBurst = p.integer("RATE_BURST", 0, 0, 10_000_000) },
			value: func(c *Config) string { return strconv.Itoa(c.EffectiveRateBurst()) },
		},
		{
			Name: "MAX_UNFINISHED_TASKS", Default: "`10000`", Meaning: "per tenant: more unfinished (available, scheduled, pending, running, retryable) tasks are refused with `429`; `0` turns it off",
			parse: func(p *parser, c *Config) { c.MaxUnfinished = p.integer("MAX_UNFINISHED_TASKS", 10_000, 0, 10_000_000) },
			value: func(c *Config) string { return strconv.Itoa(c.MaxUnfinished) },
		},
		{
			Name: "MAX_ARGS_BYTES", Default: "`1048576`", Meaning: "largest task `args` accepted through the API, in bytes of JSON (`422` beyond; at most 1 MiB, the body limit)",
			parse: func(p *parser, c *Config) { c.MaxArgsBytes = p.integer("MAX_ARGS_BYTES", 1<<20, 2, 1<<20) },
			value: func(c *Config) string { return strconv.Itoa(c.MaxArgsBytes) },
		},
		{
			Name: "ENQUEUE_BATCH_MAX", Default: "`128`", Meaning: "group commit: at most this many concurrent `POST /v1/tasks` share one INSERT and one commit (no timer: requests queue only while earlier inserts run; [measured](docs/performance.md#group-commit-and-bulk-enqueue)); `1` turns it off",
			parse: func(p *parser, c *Config) { c.EnqueueBatchMax = p.integer("ENQUEUE_BATCH_MAX", 128, 1, 1000) },
			value: func(c *Config) string { return strconv.Itoa(c.EnqueueBatchMax) },
		},
		{
			Name: "HTTP_READ_HEADER_TIMEOUT", Default: "`10s`", Meaning: "a client must send its request headers within this (slowloris)",
			parse: func(p *parser, c *Config) {
				c.ReadHeaderTimeout = p.duration("HTTP_READ_HEADER_TIMEOUT", 10*time.Second, 0)
			},
			value: func(c *Config) string { return c.ReadHeaderTimeout.String() },
		},
		{
			Name: "HTTP_READ_TIMEOUT", Default: "`30s`", Meaning: "a client must send its whole request (headers and body) within this",
			parse: func(p *parser, c *Config) {
				c.ReadTimeout = p.duration("HTTP_READ_TIMEOUT", 30*time.Second, 0)
			},
			value: func(c *Config) string { return c.ReadTimeout.String() },
		},
		{
			Name: "HTTP_IDLE_TIMEOUT", Default: "`2m`", Meaning: "an idle keep-alive connection is closed after this",
			parse: func(p *parser, c *Config) {
				c.IdleTimeout = p.duration("HTTP_IDLE_TIMEOUT", 2*time.Minute, 0)
			},
			value: func(c *Config) string { return c.IdleTimeout.String() },
		},
		{
			Name: "HTTP_MAX_HEADER_BYTES", Default: "`65536`", Meaning: "request line and headers larger than this are refused (`431`)",
			parse: func(p *parser, c *Config) {
				c.MaxHeaderBytes = p.integer("HTTP_MAX_HEADER_BYTES", 64<<10, 4<<10, 1<<20)
			},
			value: func(c *Config) string { return strconv.Itoa(c.MaxHeaderBytes) },
		},
		{
			Name: "DB_STATEMENT_TIMEOUT", Default: "`30s`", Meaning: "Postgres `statement_timeout` of `serve`'s pool: no query (API or workers) runs longer; `migrate` has none",
			parse: func(p *parser, c *Config) {
				c.StatementTimeout = p.duration("DB_STATEMENT_TIMEOUT", 30*time.Second, 0)
			},
			value: func(c *Config) string { return c.StatementTimeout.String() },
		},
		{
			Name: "FETCH_COOLDOWN", Default: "`1ms`", Meaning: "River's minimum time between fetches, and between its insert wake-ups (pickup waits up to one cooldown; [measured](docs/performance.md))",
			parse: func(p *parser, c *Config) {
				c.FetchCooldown = p.duration("FETCH_COOLDOWN", time.Millisecond, time.Millisecond)
			},
			value: func(c *Config) string { return c.FetchCooldown.String() },
		},
		{
			Name: "FETCH_POLL_INTERVAL", Default: "`100ms`", Meaning: "River's fallback poll when no LISTEN/NOTIFY wake-up arrives (bounds the worst pickup delay)",
			parse: func(p *parser, c *Config) {
				c.FetchPollInterval = p.duration("FETCH_POLL_INTERVAL", 100*time.Millisecond, 0)
			},
			value: func(c *Config) string { return c.FetchPollInterval.String() },
		},
		{
			Name: "DB_MAX_CONNS", Default: "`10`", Meaning: "connection pool size, for API and workers together: a few per core of the Postgres server (more backends than cores only contend)",
			parse: func(p *parser, c *Config) { c.DBMaxConns = p.integer("DB_MAX_CONNS", 10, 4, 10_000) },
			value: func(c *Config) string { return strconv.Itoa(c.DBMaxConns) },
		},
		{
			Name: "GOGC", Default: "`400`", Meaning: "Go's garbage collection target, read by the Go runtime: a percentage or `off`; unset, `serve` sets 400, which spends ~15 % less CPU per enqueued task than Go's 100 for a larger heap ([measured](docs/performance.md))",
			parse: func(p *parser, c *Config) {
				raw := p.str("GOGC", strconv.Itoa(DefaultGCPercent))
				if raw == "off" {
					c.GCPercent = -1
					return
				}
				v, err := strconv.Atoi(raw)
				if err != nil || v < 1 {
					p.errs = append(p.errs, fmt.Errorf("GOGC=%q: must be a positive integer or off", raw))
				}
				c.GCPercent = v
			},
			value: func(c *Config) string {
				if c.GCPercent < 0 {
					return "off"
				}
				return strconv.Itoa(c.GCPercent)
			},
		},
		{
			Name: "INLINE_COMPLETE_BELOW", Default: "`500`", Meaning: "tasks/s: while fewer finish per second, each is completed the moment its worker returns instead of in River's next batch (up to 250 ms later); `0` turns it off",
			parse: func(p *parser, c *Config) {
				c.InlineCompleteBelow = p.integer("INLINE_COMPLETE_BELOW", riverseam.DefaultIdleBelow, 0, 1_000_000)
			},
			value: func(c *Config) string { return strconv.Itoa(c.InlineCompleteBelow) },
		},
		{
			Name: "REQUEST_TIMEOUT", Default: "`10s`", Meaning: "a body that takes longer to arrive is refused with `408`; an API request whose work takes longer fails with `503`",
			parse: func(p *parser, c *Config) {
				c.RequestTimeout = p.duration("REQUEST_TIMEOUT", 10*time.Second, 0)
			},
			value: func(c *Config) string { return c.RequestTimeout.String() },
		},
		{
			Name: "COMPLETED_RETENTION", Default: "`24h`", Meaning: "how long River keeps completed job rows (the `tasks` row stays)",
			parse: func(p *parser, c *Config) {
				c.CompletedRetention = p.duration("COMPLETED_RETENTION", 24*time.Hour, 0)
			},
			value: func(c *Config) string { return c.CompletedRetention.String() },
		},
		{
			Name: "LOG_LEVEL", Default: "`info`", Meaning: "`debug`, `info`, `warn` or `error`",
			parse: func(p *parser, c *Config) { c.LogLevel = p.level("LOG_LEVEL") },
			value: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) },
		},
		{
			Name: "LOG_FORMAT", Default: "`json`, `text` on a terminal", Meaning: "`json` or `text`: one line per request and per task attempt",
			parse: func(p *parser, c *Config) { c.LogFormat = p.oneOf("LOG_FORMAT", "", "json", "text") },
			value: func(c *Config) string {
				if c.LogFormat == "" {
					return "(json, or text on a terminal)"
				}
				return c.LogFormat
			},
		},
		{
			Name: "ADMIN_USER", Default: "none", Meaning: "operator user name (HTTP basic auth) for `/riverui/`, `/v1/queues` and `/metrics`; without it those are refused",
			parse: func(p *parser, c *Config) { c.AdminUser = p.str("ADMIN_USER", "") },
			value: func(c *Config) string { return c.AdminUser },
		},
		{
			Name: "ADMIN_PASSWORD", Default: "none", Meaning: "operator password; set with `ADMIN_USER`", Secret: true,
			parse: func(p *parser, c *Config) { c.AdminPassword = p.str("ADMIN_PASSWORD", "") },
			value: func(c *Config) string { return c.AdminPassword },
		},
		{
			Name: "ADMIN_READ_ONLY", Default: "`false`", Meaning: "`true`: River UI and queue control refuse every change (only `GET`)",
			parse: func(p *parser, c *Config) { c.AdminReadOnly = p.boolean("ADMIN_READ_ONLY", false) },
			value: func(c *Config) string { return strconv.FormatBool(c.AdminReadOnly) },
		},
		{
			Name: "METRICS_ENABLED", Default: "`true`", Meaning: "`false` drops `/metrics` and the instrumentation behind it (for measuring its cost)",
			parse: func(p *parser, c *Config) { c.MetricsEnabled = p.boolean("METRICS_ENABLED", true) },
			value: func(c *Config) string { return strconv.FormatBool(c.MetricsEnabled) },
		},
		{
			Name: "METRICS_PUBLIC", Default: "`false`", Meaning: "`true` serves `/metrics` without operator credentials (for a scraper on a private network)",
			parse: func(p *parser, c *Config) { c.MetricsPublic = p.boolean("METRICS_PUBLIC", false) },
			value: func(c *Config) string { return strconv.FormatBool(c.MetricsPublic) },
		},
		{
			Name: "METRICS_INTERVAL", Default: "`15s`", Meaning: "how often queue depth and oldest age are sampled from SQL for `/metrics`",
			parse: func(p *parser, c *Config) {
				c.MetricsInterval = p.duration("METRICS_INTERVAL", 15*time.Second, time.Second)
			},
			value: func(c *Config) string { return c.MetricsInterval.String() },
		},
		{
			Name: "OTEL_TRACES_EXPORTER", Default: "`none`", Meaning: "`otlp` exports traces over OTLP/HTTP, configured by the standard `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME` and `OTEL_TRACES_SAMPLER` variables ([docs/operations.md](docs/operations.md))",
			parse: func(p *parser, c *Config) { c.TracesExporter = p.oneOf("OTEL_TRACES_EXPORTER", "none", "none", "otlp") },
			value: func(c *Config) string { return c.TracesExporter },
		},
		{
			Name: "LIVE_SECRET", Default: "random per process", Meaning: "key of the tasks' read links (at least 32 characters; the same on every replica, or links work only on the replica that made them, until it restarts)", Secret: true,
			parse: func(p *parser, c *Config) { c.LiveSecret = p.str("LIVE_SECRET", "") },
			value: func(c *Config) string { return c.LiveSecret },
		},
		{
			Name: "LIVE_MAX_STREAMS", Default: "`10000`", Meaning: "event streams and `?wait=` requests open at once per process; more get `503`",
			parse: func(p *parser, c *Config) { c.LiveMaxStreams = p.integer("LIVE_MAX_STREAMS", 10_000, 1, 1_000_000) },
			value: func(c *Config) string { return strconv.Itoa(c.LiveMaxStreams) },
		},
		{
			Name: "LIVE_MAX_STREAMS_PER_TENANT", Default: "nine tenths of `LIVE_MAX_STREAMS`", Meaning: "of those, how many one tenant may have open at once (a read link counts for its task's tenant), at most `LIVE_MAX_STREAMS`; more get `503`. The default leaves the last tenth to other tenants; lower it when many tenants share a server",
			parse: func(p *parser, c *Config) {
				c.LiveMaxStreamsPerTenant = p.integer("LIVE_MAX_STREAMS_PER_TENANT", 0, 0, 1_000_000)
			},
			value: func(c *Config) string { return strconv.Itoa(c.EffectiveLiveMaxStreamsPerTenant()) },
		},
		{
			Name: "PUBLIC_URL", Default: "`http://` + the listen address (an unspecified host, `0.0.0.0`, as `127.0.0.1`)", Meaning: "the base URL at which the receivers of `http` tasks reach this server to report progress (`Handoff-Progress-URL`); set it behind a load balancer",
			parse: func(p *parser, c *Config) { c.PublicURL = p.baseURL("PUBLIC_URL") },
			value: func(c *Config) string { return c.EffectivePublicURL() },
		},
		{
			Name: "WEBHOOK_SECRET", Default: "none", Meaning: "`whsec_` + base64 of 24+ random bytes: signs `http` tasks and callbacks ([Standard Webhooks](docs/http-kind.md#signatures-standard-webhooks)); unset, they are sent unsigned (with a warning at start-up)", Secret: true,
			parse: func(p *parser, c *Config) { c.WebhookSecret = p.webhookSecret("WEBHOOK_SECRET") },
			value: func(c *Config) string { return secretValue(c.WebhookSecret) },
		},
		{
			Name: "WEBHOOK_SECRET_PREVIOUS", Default: "none", Meaning: "during a rotation, the old secret: requests carry a second signature under it", Secret: true,
			parse: func(p *parser, c *Config) { c.WebhookSecretPrevious = p.webhookSecret("WEBHOOK_SECRET_PREVIOUS") },
			value: func(c *Config) string { return secretValue(c.WebhookSecretPrevious) },
		},
		{
			Name: "HTTP_TASK_ALLOW", Default: "none", Meaning: "comma-separated CIDRs, IP addresses, hostnames, each with an optional `:port`, that `http` tasks may reach although they are not public ([the SSRF guard](docs/http-kind.md#the-ssrf-guard))",
			parse: func(p *parser, c *Config) { c.HTTPTaskAllow = p.allowList("HTTP_TASK_ALLOW") },
			value: func(c *Config) string {
				if c.HTTPTaskAllow == nil {
					return ""
				}
				return c.HTTPTaskAllow.String()
			},
		},
	}
}

// secretValue is what Print masks: "" when unset.
func secretValue(s webhook.Secret) string {
	if s.IsZero() {
		return ""
	}
	return "set"
}

// webhookSecret reads a whsec_ secret; unset is the zero Secret. The value
// is never repeated in an error: it is a secret.
func (p *parser) webhookSecret(name string) webhook.Secret {
	raw := p.getenv(name)
	if raw == "" {
		return webhook.Secret{}
	}
	secret, err := webhook.ParseSecret(raw)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
	}
	return secret
}

// allowList reads HTTP_TASK_ALLOW.
func (p *parser) allowList(name string) *safehttp.AllowList {
	list, err := safehttp.ParseAllowList(p.getenv(name))
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
	}
	return list
}

// baseURL reads an absolute http(s) URL without a path, query or fragment,
// and drops a trailing slash.
func (p *parser) baseURL(name string) string {
	raw := p.getenv(name)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be an absolute http or https URL with no path, query or credentials, e.g. https://handoff.example.com", name, raw))
		return ""
	}
	return strings.TrimSuffix(raw, "/")
}

// parser reads typed variables and collects every error, one per variable.
type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) str(name, def string) string {
	if v := p.getenv(name); v != "" {
		return v
	}
	return def
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := p.str(name, def)
	if v != def && !slices.Contains(allowed, v) {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be %s", name, v, strings.Join(allowed, " or ")))
		return def
	}
	return v
}

func (p *parser) hostPort(name, def string) string {
	v := p.str(name, def)
	if _, _, err := net.SplitHostPort(v); err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be host:port, e.g. 127.0.0.1:8080 or :8080", name, v))
	}
	return v
}

func (p *parser) boolean(name string, def bool) bool {
	raw := p.getenv(name)
	if raw == "" {
		return def
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be true or false", name, raw))
	}
	return v
}

// optionalBool reads a boolean that may be unset (nil).
func (p *parser) optionalBool(name string) *bool {
	if p.getenv(name) == "" {
		return nil
	}
	v := p.boolean(name, false)
	return &v
}

// list reads a comma-separated list, blanks dropped.
func (p *parser) list(name string) []string {
	var items []string
	for item := range strings.SplitSeq(p.getenv(name), ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

func (p *parser) integer(name string, def, lo, hi int) int {
	raw := p.getenv(name)
	if raw == "" {
		return def
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < lo || v > hi {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be an integer from %d to %d", name, raw, lo, hi))
	}
	return v
}

// duration parses a positive duration of at least least (when non-zero).
func (p *parser) duration(name string, def, least time.Duration) time.Duration {
	raw := p.getenv(name)
	if raw == "" {
		return def
	}
	v, err := time.ParseDuration(raw)
	switch {
	case err != nil || v <= 0:
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be a positive duration such as 30s or 2m", name, raw))
		return def
	case v < least:
		p.errs = append(p.errs, fmt.Errorf("%s=%s: must be at least %s", name, v, least))
		return def
	}
	return v
}

func (p *parser) level(name string) slog.Level {
	var level slog.Level
	if raw := p.getenv(name); raw != "" {
		if err := level.UnmarshalText([]byte(raw)); err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: must be debug, info, warn or error", name, raw))
		}
	}
	return level
}

func (p *parser) queues(name string) map[string]int {
	raw := p.getenv(name)
	if raw == "" {
		return nil
	}
	queues := map[string]int{}
	for item := range strings.SplitSeq(raw, ",") {
		queue, workers, ok := strings.Cut(strings.TrimSpace(item), "=")
		n, err := strconv.Atoi(workers)
		if !ok || queue == "" || err != nil || n < 1 || n > MaxWorkers {
			p.errs = append(p.errs, fmt.Errorf("%s: %q must be name=workers, workers from 1 to %d", name, item, MaxWorkers))
			continue
		}
		if queue == river.QueueDefault {
			p.errs = append(p.errs, fmt.Errorf("%s: set the default queue's workers with WORKERS, not QUEUES", name))
			continue
		}
		queues[queue] = n
	}
	return queues
}
