package task

import (
	"sync"
	"time"
)

// roomFresh is how long a count of a tenant's unfinished tasks stands in
// for the next ones while the tenant is far from its cap.
//
// Counting is an index walk of the states of unfinished tasks, and that
// walk also steps over the entries that finished tasks left there until
// vacuum: with 300k of them, one count took 23 ms (docs/performance.md,
// "The unfinished-task cap"). Counted before every create, that was the
// price of every create on a busy table.
const roomFresh = time.Second

// roomCache remembers, per tenant, how many more unfinished tasks the cap
// allowed when last counted, less what this process has admitted since. It
// only ever admits: a tenant within a tenth of its cap (or with no room
// left) is counted again for every create, so a refusal always comes from a
// fresh count, and tasks that finished since only make the cache cautious.
// What it cannot see is what other replicas and SQL add meanwhile: the cap
// may be passed by what they add in roomFresh, beyond a tenth of the cap.
type roomCache struct {
	// margin is the room at or below which a tenant is always counted.
	margin int
	// fresh is roomFresh (tests set it).
	fresh time.Duration

	mu     sync.Mutex
	tenant map[string]roomEntry
}

type roomEntry struct {
	room    int
	counted time.Time
}

func newRoomCache(maxUnfinished int) *roomCache {
	return &roomCache{margin: max(maxUnfinished/10, 1), fresh: roomFresh, tenant: map[string]roomEntry{}}
}

// get returns the tenant's room if a count stands for it.
func (c *roomCache) get(tenant string, now time.Time) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.tenant[tenant]
	if !ok || now.Sub(e.counted) >= c.fresh || e.room <= c.margin {
		return 0, false
	}
	return e.room, true
}

// counted records a fresh count, and forgets tenants counted long ago.
func (c *roomCache) counted(tenant string, room int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tenant) > 1024 {
		for name, e := range c.tenant {
			if now.Sub(e.counted) >= c.fresh {
				delete(c.tenant, name)
			}
		}
	}
	c.tenant[tenant] = roomEntry{room: room, counted: now}
}

// take counts n tasks admitted for tenant since its count.
func (c *roomCache) take(tenant string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.tenant[tenant]; ok {
		e.room = max(e.room-n, 0)
		c.tenant[tenant] = e
	}
}
