package task

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/store"
)

// CreateResult is one request's answer from CreateMany: what Create would
// have returned for it.
type CreateResult struct {
	Task    *Task
	Created bool
	Err     error
}

// CreateMany creates many tasks at once, each accepted or refused on its
// own, with the same rules as Create: the results are in reqs's order, and
// each is what Create would have returned for its request (a repeat of an
// idempotency key its task and Created false, a key reused with another
// request *IdempotencyConflictError, a bad request *ValidationError, over
// the cap *LimitError).
//
// The valid requests go in one multi-row INSERT (group commit's, up to
// BulkMax rows and batchMaxBytes of args per statement). When Postgres
// refuses it, nothing was written: requests whose key is taken are answered
// from the key, and the rest are inserted again in halves, down to single
// requests through Create's own insert, so that one bad row costs a few
// statements, not one per request. Two requests with the same key in reqs
// are taken in order: the second is a repeat of the first.
//
// The cap of unfinished tasks (ServiceOpts.MaxUnfinished) is counted once
// per call and tenant, before the insert: the first requests that fit under
// it go ahead, in reqs's order, and the rest are refused with *LimitError
// (each one that repeats an existing key is answered as the repeat
// instead).
func (s *Service) CreateMany(ctx context.Context, reqs []CreateRequest) []CreateResult {
	results := make([]CreateResult, len(reqs))
	ps := make([]*Prepared, len(reqs))
	var pending []int
	for i, req := range reqs {
		if tenant, ok := scopedTenant(ctx); ok || req.Tenant == "" {
			req.Tenant = tenant
		}
		p, err := s.validator.Prepare(req)
		if err != nil {
			results[i].Err = err
			continue
		}
		ps[i] = p
		pending = append(pending, i)
	}
	pending = s.admitUnfinished(ctx, ps, pending, results)

	// A key's first request goes in the statement; later ones with the
	// same key follow it, as repeats.
	var first, later []int
	seen := map[[2]string]bool{}
	for _, i := range pending {
		if key := ps[i].IdempotencyKey; key != nil {
			k := [2]string{ps[i].Tenant, *key}
			if seen[k] {
				later = append(later, i)
				continue
			}
			seen[k] = true
		}
		first = append(first, i)
	}
	for len(first) > 0 {
		n, size := 0, 0
		for n < len(first) && n < BulkMax && (n == 0 || size+len(ps[first[n]].EncodedArgs) <= batchMaxBytes) {
			size += len(ps[first[n]].EncodedArgs)
			n++
		}
		s.insertSplit(ctx, ps, first[:n], results, true)
		first = first[n:]
	}
	for _, i := range later {
		results[i] = s.createPrepared(ctx, ps[i])
	}
	return results
}

// admitUnfinished applies the cap of unfinished tasks to pending, counting
// once per tenant, and returns the requests that go ahead.
func (s *Service) admitUnfinished(ctx context.Context, ps []*Prepared, pending []int, results []CreateResult) []int {
	if s.maxUnfinished == 0 || len(pending) == 0 {
		return pending
	}
	// room is each tenant's room left as the batch is admitted; taken its
	// room before (what is admitted is told to s.rooms at the end).
	room, taken := map[string]int{}, map[string]int{}
	admitted := pending[:0:0]
	for _, i := range pending {
		p := ps[i]
		left, counted := room[p.Tenant]
		if !counted {
			var err error
			if left, err = s.unfinishedRoom(ctx, p.Tenant); err != nil {
				results[i].Err = err
				continue
			}
			taken[p.Tenant] = left
		}
		if left > 0 {
			room[p.Tenant] = left - 1
			admitted = append(admitted, i)
			continue
		}
		room[p.Tenant] = 0
		if p.IdempotencyKey != nil {
			// A repeat is answered even at the cap, as in Create.
			t, err := s.byIdempotencyKey(ctx, p)
			if !errors.Is(err, ErrNotFound) {
				results[i] = CreateResult{Task: t, Err: err}
				continue
			}
		}
		results[i].Err = s.limitError(p.Tenant)
	}
	for tenant, left := range room {
		s.rooms.take(tenant, taken[tenant]-left)
	}
	return admitted
}

// insertSplit inserts the requests idx of ps in one statement and fills in
// their results. When Postgres refuses the statement, nothing was written:
// with keys (byKey, the first time), the requests whose key is taken are
// answered from it; then the rest go again in halves, a single request
// through Create's own path.
func (s *Service) insertSplit(ctx context.Context, ps []*Prepared, idx []int, results []CreateResult, byKey bool) {
	if len(idx) == 0 {
		return
	}
	if len(idx) == 1 {
		results[idx[0]] = s.createPrepared(ctx, ps[idx[0]])
		return
	}
	batch := make([]*Prepared, len(idx))
	for j, i := range idx {
		batch[j] = ps[i]
	}
	outs, refused := s.insertRows(ctx, batch, lockWaitFor(batch...))
	if refused == nil {
		for j, i := range idx {
			results[i] = s.finishCreate(ctx, ps[i], outs[j].job, outs[j].found, outs[j].err)
		}
		return
	}
	if ctx.Err() != nil {
		// The caller gave up: its statement was cancelled, and more would
		// be too.
		for _, i := range idx {
			results[i].Err = fmt.Errorf("insert job: %w", errors.Join(refused, ctx.Err()))
		}
		return
	}
	if byKey {
		// Most often a refused statement is a key taken by a repeat: answer
		// those from the key instead of halving down to them.
		rest := idx[:0:0]
		for _, i := range idx {
			if ps[i].IdempotencyKey != nil {
				t, err := s.byIdempotencyKey(ctx, ps[i])
				if !errors.Is(err, ErrNotFound) {
					results[i] = CreateResult{Task: t, Err: err}
					continue
				}
			}
			rest = append(rest, i)
		}
		if len(rest) < len(idx) {
			s.insertSplit(ctx, ps, rest, results, false)
			return
		}
	}
	half := len(idx) / 2
	s.insertSplit(ctx, ps, idx[:half], results, false)
	s.insertSplit(ctx, ps, idx[half:], results, false)
}

// createPrepared is Create after validation and the cap: the single-row
// insert and its answer.
func (s *Service) createPrepared(ctx context.Context, p *Prepared) CreateResult {
	job, found, err := s.insert(ctx, p)
	return s.finishCreate(ctx, p, job, found, err)
}

// finishCreate turns an insert's outcome into Create's answer, as Create
// does.
func (s *Service) finishCreate(ctx context.Context, p *Prepared, job *rivertype.JobRow, found *store.TaskGetByIdempotencyKeyForRequestRow, err error) CreateResult {
	switch {
	case errors.Is(err, errKeyTaken):
		t, err := s.byIdempotencyKey(ctx, p)
		return CreateResult{Task: t, Err: err}
	case err != nil:
		return CreateResult{Err: err}
	case found != nil:
		if !found.SameRequest {
			return CreateResult{Err: &IdempotencyConflictError{TaskID: found.Task.ID}}
		}
		t, err := fromRow(&found.Task)
		return CreateResult{Task: t, Created: err == nil, Err: err}
	}
	row, err := riverseam.TaskRow(job)
	if err != nil {
		return CreateResult{Err: err}
	}
	t, err := fromRow(row)
	return CreateResult{Task: t, Created: err == nil, Err: err}
}
