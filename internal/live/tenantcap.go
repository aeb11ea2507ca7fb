package live

import (
	"context"
	"fmt"
	"sync"
)

// TenantCap returns a HubOpts.AdmitFunc that admits at most max
// subscriptions of one tenant at once in this process, so that one tenant
// cannot take every stream HubOpts.MaxStreams allows. tenantOf says whose a
// subscription is; a subscription it finds no tenant for ("") is admitted
// uncounted (the caller answers it 404).
func TenantCap(maxPerTenant int, tenantOf func(ctx context.Context, taskID int64) (string, error)) func(ctx context.Context, taskID int64) (func(), error) {
	var (
		mu   sync.Mutex
		open = map[string]int{}
	)
	return func(ctx context.Context, taskID int64) (func(), error) {
		tenant, err := tenantOf(ctx, taskID)
		if err != nil {
			return nil, fmt.Errorf("tenant of the subscription: %w", err)
		}
		if tenant == "" {
			return func() {}, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if open[tenant] >= maxPerTenant {
			return nil, fmt.Errorf("%w: a tenant may have at most %d open in this process (LIVE_MAX_STREAMS_PER_TENANT)", ErrTooManyStreams, maxPerTenant)
		}
		open[tenant]++
		var once sync.Once
		return func() {
			once.Do(func() {
				mu.Lock()
				defer mu.Unlock()
				if open[tenant]--; open[tenant] == 0 {
					delete(open, tenant)
				}
			})
		}, nil
	}
}
