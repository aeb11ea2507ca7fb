package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/handoff/handoff/internal/auth"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/task"
)

// AuthMode says when the tenant routes (/v1 tasks, the live routes, the
// page's form) need an API key.
type AuthMode int

const (
	// AuthRequired means every request needs Authorization: Bearer <key>.
	AuthRequired AuthMode = iota
	// AuthDisabled means a request without a key acts for the default tenant
	// (one with a key still acts for the key's tenant). The Host header
	// must name loopback or an allowed host, against DNS rebinding.
	AuthDisabled
	// AuthUntilKeys is AuthDisabled until the first API key is made, then
	// AuthRequired (seen within auth.KeyCacheTTL, and for good).
	AuthUntilKeys
)

// AuthOpts configures who may call the tenant routes and how often.
type AuthOpts struct {
	// Mode says when a key is needed.
	Mode AuthMode

	// Authenticator checks keys. Required unless Mode is AuthDisabled.
	Authenticator *auth.Authenticator

	// AllowedHosts are the host names (no port) a Host header may name
	// while no key is needed, besides localhost and loopback addresses.
	AllowedHosts []string

	// RateLimit is each tenant's sustained requests per second on this
	// process (a token bucket of RateBurst); 0 means no limit.
	RateLimit float64

	// RateBurst is the bucket's size. Defaults to RateLimit, at least 1.
	RateBurst int
}

// gate authenticates tenant requests and applies their rate limit. A nil
// opts (ServerOpts.Auth unset: tests, or an embedder with its own auth in
// front) lets every request through as the default tenant.
type gate struct {
	logger  *slog.Logger
	opts    *AuthOpts
	timeout time.Duration
	hosts   map[string]bool
	limiter *tenantLimiter
}

func newGate(logger *slog.Logger, opts *AuthOpts, timeout time.Duration) *gate {
	g := &gate{logger: logger, opts: opts, timeout: timeout}
	if opts == nil {
		return g
	}
	g.hosts = map[string]bool{"localhost": true}
	for _, h := range opts.AllowedHosts {
		g.hosts[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	if opts.RateLimit > 0 {
		g.limiter = newTenantLimiter(opts.RateLimit, opts.RateBurst)
	}
	return g
}

var (
	// errForeignHost refuses a request whose Host is not this server's
	// while no key is needed: a DNS-rebinding page would send its own.
	errForeignHost = &requestError{
		status: http.StatusForbidden,
		detail: "the Host header names neither this server's loopback address nor an allowed host; " +
			"while API keys are not required only those are served (set ALLOWED_HOSTS to add one)",
	}
	// errFormNeedsOpenAPI refuses the page's form while keys are required:
	// a browser holds no key, and the form acts for no tenant.
	errFormNeedsOpenAPI = &requestError{
		status: http.StatusForbidden,
		detail: "this server requires API keys, so the page's form cannot create tasks: " +
			"create them with POST /v1/tasks and Authorization: Bearer <key>; their read links open the task page",
	}
)

// open reports whether requests without a key are served now.
func (g *gate) open(ctx context.Context) (bool, error) {
	if g.opts == nil {
		return true, nil
	}
	switch g.opts.Mode {
	case AuthDisabled:
		return true, nil
	case AuthUntilKeys:
		exists, err := g.opts.Authenticator.KeysExist(ctx)
		if err != nil {
			return false, err //nolint:wrapcheck // the auth package's own wrapped error
		}
		return !exists, nil
	case AuthRequired:
		return false, nil
	default:
		return false, nil
	}
}

// tenant decides whom r acts for: the key's tenant, or the default tenant
// when the API is open and no key is sent.
func (g *gate) tenant(ctx context.Context, r *http.Request) (string, error) {
	open, err := g.open(ctx)
	if err != nil {
		return "", err
	}
	header := r.Header.Values("Authorization")
	if open {
		if g.opts != nil && !g.allowedHost(r.Host) {
			return "", errForeignHost
		}
		if len(header) == 0 || g.opts == nil || g.opts.Authenticator == nil || blankBearer(header) {
			return task.DefaultTenant, nil
		}
	}
	if len(header) != 1 {
		return "", auth.ErrUnauthenticated
	}
	tenant, err := g.opts.Authenticator.Authenticate(ctx, header[0])
	if err != nil {
		return "", err //nolint:wrapcheck // ErrUnauthenticated must stay recognisable
	}
	return tenant, nil
}

// blankBearer reports a lone Authorization header with no key in it
// ("Bearer " from curl -H "Authorization: Bearer $HANDOFF_KEY" with the
// variable unset): no key, where the API is open.
func blankBearer(header []string) bool {
	v := strings.TrimSpace(header[0])
	return len(header) == 1 && (v == "" || strings.EqualFold(v, "Bearer"))
}

// allowedHost reports whether a Host header names loopback, localhost or
// an allowed host, whatever its port.
func (g *gate) allowedHost(hostPort string) bool {
	host := hostPort
	if h, _, err := net.SplitHostPort(hostPort); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback() || g.hosts[ip.String()]
	}
	return g.hosts[host] || strings.HasSuffix(host, ".localhost")
}

// require serves next for authenticated requests within their tenant's
// rate, with the tenant in the request's context (task.WithTenant).
func (g *gate) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
		tenant, err := g.tenant(ctx, r)
		cancel()
		if err != nil {
			g.refuse(w, r, err)
			return
		}
		if wait, ok := g.limiter.allow(tenant, time.Now()); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeProblem(w, r, g.logger, &requestError{
				status: http.StatusTooManyRequests,
				detail: "this tenant is sending requests faster than its rate limit allows; retry after Retry-After seconds",
			})
			return
		}
		next.ServeHTTP(w, r.WithContext(task.WithTenant(r.Context(), tenant)))
	})
}

// requireOrToken is require for the live routes, except that a request
// with a read token for the task ({id}) needs no key: the token is the
// proof, and it reads that one task whatever its tenant.
func (g *gate) requireOrToken(tokens *live.TokenSigner, next http.Handler) http.Handler {
	keyed := g.require(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") == "" {
			keyed.ServeHTTP(w, r)
			return
		}
		id, err := pathID(r)
		if err != nil {
			writeProblem(w, r, g.logger, err)
			return
		}
		if err := checkReadToken(r, tokens, id); err != nil {
			writeProblem(w, r, g.logger, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(task.WithAnyTenant(r.Context())))
	})
}

// form guards the page's form: served only while the API is open (as the
// default tenant, Host checked), refused with an explanation otherwise.
func (g *gate) form(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
		open, err := g.open(ctx)
		cancel()
		switch {
		case err != nil:
			writeProblem(w, r, g.logger, err)
			return
		case !open:
			writeProblem(w, r, g.logger, errFormNeedsOpenAPI)
			return
		case g.opts != nil && !g.allowedHost(r.Host):
			writeProblem(w, r, g.logger, errForeignHost)
			return
		}
		next.ServeHTTP(w, r.WithContext(task.WithTenant(r.Context(), task.DefaultTenant)))
	})
}

// refuse answers a request the gate turned away. Every reason a key is not
// accepted gets the same 401: the answer tells nothing about which.
func (g *gate) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, auth.ErrUnauthenticated) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="handoff"`)
		writeProblem(w, r, g.logger, &requestError{status: http.StatusUnauthorized, detail: auth.ErrUnauthenticated.Error()})
		return
	}
	writeProblem(w, r, g.logger, err)
}

// retryAfter is a Retry-After value: whole seconds, at least 1.
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// tenantLimiter is a token bucket per tenant, in this process's memory:
// with N replicas behind a balancer a tenant gets up to N times the rate.
// Tenants come only from valid keys (and the default tenant), so the map
// is bounded by the number of tenants.
type tenantLimiter struct {
	limit rate.Limit
	burst int

	mu       sync.Mutex
	byTenant map[string]*rate.Limiter
}

func newTenantLimiter(perSecond float64, burst int) *tenantLimiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &tenantLimiter{limit: rate.Limit(perSecond), burst: burst, byTenant: map[string]*rate.Limiter{}}
}

// allow takes a token from tenant's bucket, or reports how long until one
// is there.
func (l *tenantLimiter) allow(tenant string, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	lim, ok := l.byTenant[tenant]
	if !ok {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.byTenant[tenant] = lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, false
	}
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		return wait, false
	}
	return 0, true
}
