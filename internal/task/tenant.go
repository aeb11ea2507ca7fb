package task

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// tenantKey is the context key of a request's tenant scope.
type tenantKey struct{}

// scope is whose tasks a context may see: one tenant's, or any task (a
// request holding the task's read token, which names one task).
type scope struct {
	tenant    string
	anyTenant bool
}

// WithTenant returns a context whose Service calls see and create only the
// tenant's tasks: another tenant's task is ErrNotFound. The HTTP API sets it
// from the request's API key.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, scope{tenant: tenant})
}

// WithAnyTenant returns a context whose Get reads a task of any tenant. It
// is for a request that proved, with a read token, that it may read one
// task; List still shows only the default tenant's tasks and Create still
// creates in it.
func WithAnyTenant(ctx context.Context) context.Context {
	return context.WithValue(ctx, tenantKey{}, scope{tenant: DefaultTenant, anyTenant: true})
}

// TenantFrom returns the tenant a context is scoped to: DefaultTenant when
// none was set (Go callers and tests without keys).
func TenantFrom(ctx context.Context) string {
	if s, ok := ctx.Value(tenantKey{}).(scope); ok && s.tenant != "" {
		return s.tenant
	}
	return DefaultTenant
}

// scopedTenant returns the tenant WithTenant set, and whether one was;
// else DefaultTenant and false.
func scopedTenant(ctx context.Context) (string, bool) {
	if s, ok := ctx.Value(tenantKey{}).(scope); ok && !s.anyTenant && s.tenant != "" {
		return s.tenant, true
	}
	return DefaultTenant, false
}

// ReadsAnyTenant reports whether ctx reads tasks of any tenant
// (WithAnyTenant): a request that holds a task's read token, not a key.
func ReadsAnyTenant(ctx context.Context) bool { return anyTenant(ctx) }

func anyTenant(ctx context.Context) bool {
	s, ok := ctx.Value(tenantKey{}).(scope)
	return ok && s.anyTenant
}

// ErrTooManyUnfinished means the tenant has as many unfinished tasks as
// ServiceOpts.MaxUnfinished allows.
var ErrTooManyUnfinished = errors.New("too many unfinished tasks")

// LimitError is ErrTooManyUnfinished with the numbers and a suggested wait
// (errors.Is(err, ErrTooManyUnfinished) holds for it).
type LimitError struct {
	// Tenant is whose tasks were counted.
	Tenant string
	// Max is the cap.
	Max int
	// RetryAfter is how long a client should wait before trying again.
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	// The count stops at the cap (TaskUnfinishedCount), so the tenant has
	// at least that many; tasks made by SQL, which has no cap, may add more.
	return fmt.Sprintf("%s: tenant %q has reached its cap of %d unfinished tasks; wait for some to finish", ErrTooManyUnfinished, e.Tenant, e.Max)
}

// Is makes errors.Is(err, ErrTooManyUnfinished) true.
func (e *LimitError) Is(target error) bool { return target == ErrTooManyUnfinished }
