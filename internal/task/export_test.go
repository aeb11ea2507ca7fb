package task

import "time"

// GroupStats returns what the service's group commit did so far: multi-row
// statements sent (by group commit and CreateMany), the requests that went
// in them, and requests inserted again on their own after a refusal.
func GroupStats(s *Service) (statements, grouped, alone int64) {
	return s.group.statements.Load(), s.group.grouped.Load(), s.group.alone.Load()
}

// GroupWaiting is the number of Create calls in group commit that have not
// been answered: queued, or in a statement in flight.
func GroupWaiting(s *Service) int64 { return s.group.waiting.Load() }

// UnfinishedCounts is how many times the service counted a tenant's
// unfinished tasks in the database.
func UnfinishedCounts(s *Service) int64 { return s.unfinishedCounts.Load() }

// SetRoomFresh sets how long a count of unfinished tasks stands (roomFresh).
func SetRoomFresh(s *Service, d time.Duration) { s.rooms.fresh = d }
