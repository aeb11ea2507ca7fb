-- TaskGetByID reads a task whatever its tenant: for a request holding the
-- task's read token, and for tests. The API reads through
-- TaskGetByIDForTenant.
-- name: TaskGetByID :one
SELECT * FROM tasks WHERE id = @id;

-- TaskTenant reads the tenant of a task, one probe of task_records's
-- primary key: the tenant a read link's live stream counts against.
-- name: TaskTenant :one
SELECT tenant FROM task_records WHERE id = @id;

-- name: TaskGetByIDForTenant :one
SELECT * FROM tasks WHERE id = @id AND tenant = @tenant;

-- TaskUnfinishedCount counts a tenant's unfinished tasks, up to max: an
-- index-only walk of tasks_tenant_state_id_idx (migration 00016) that stops
-- at max, so the cap's check costs at most max index entries. The records
-- of running tasks say 'available' (migration 00017), which is counted.
-- name: TaskUnfinishedCount :one
SELECT count(*) FROM (
    SELECT 1 FROM task_records
    WHERE tenant = @tenant
      AND state IN ('available', 'scheduled', 'pending', 'running', 'retryable')
    LIMIT @max
) AS unfinished;

-- TaskGetByIdempotencyKeyForRequest finds the task holding a key and tells
-- whether it was created from the same request, by the one definition of a
-- request's hash (handoff.request_hash, migration 00012).
-- name: TaskGetByIdempotencyKeyForRequest :one
SELECT sqlc.embed(tasks),
       tasks.request_hash = handoff.request_hash(
           @kind::text, @args::jsonb, @queue::text, @priority::integer,
           @max_attempts::integer, sqlc.narg(run_at)::timestamptz,
           sqlc.narg(callback_url)::text)::bytea AS same_request
FROM tasks
WHERE tenant = @tenant AND idempotency_key = @idempotency_key;

-- TaskEnqueue inserts a task in the caller's transaction through
-- handoff.enqueue (migration 00012), which checks the request again in SQL
-- and applies its idempotency key.
-- name: TaskEnqueue :one
SELECT handoff.enqueue(
    @kind::text, @args::jsonb, sqlc.narg(queue)::text, sqlc.narg(priority)::integer,
    sqlc.narg(max_attempts)::integer, sqlc.narg(run_at)::timestamptz,
    sqlc.narg(idempotency_key)::text, sqlc.narg(callback_url)::text,
    sqlc.narg(tenant)::text)::bigint AS id;

-- name: KindUpsert :exec
INSERT INTO handoff.kinds (kind, shape) VALUES (@kind, @shape)
ON CONFLICT (kind) DO UPDATE SET shape = excluded.shape, updated_at = now();

-- name: QueueUpsert :exec
INSERT INTO handoff.queues (name) VALUES (@name)
ON CONFLICT (name) DO UPDATE SET updated_at = now();

-- The list queries are four plain statements rather than one with optional
-- filters: each then has a plan that walks one index backwards from the
-- cursor, which a generic plan for "x = $1 OR $1 IS NULL" would not. Every
-- list is one tenant's, on an index of migration 00016 that leads with
-- tenant. They must be planned with their values (task.Service runs them
-- with pgx's QueryExecModeExec, an unnamed statement): a generic plan walks
-- the primary key and filters, which reads the whole table for a small
-- tenant whose tasks are old, and a row-comparison cursor, which keeps the
-- generic plan on the tenant index, does not position a backward scan in
-- Postgres 15, so a deep page read 10-90 ms (EXPLAIN in docs/security.md).

-- name: TaskListPage :many
SELECT * FROM tasks
WHERE tenant = @tenant AND id < @after_id
ORDER BY id DESC
LIMIT @max;

-- A kind's list has no index of its own (migration 00018: each index of
-- task_records costs every task's insert and its finish). It walks the
-- kind+state index once per state, each walk stopping at the page size,
-- and keeps the newest: at most 8 x max live index entries, whatever the
-- table holds. Like the state lists, a walk of a short-lived state
-- ('available', 'retryable', 'scheduled') also steps over the entries its
-- finished tasks left there until vacuum removes them. The states are
-- River's (task_records.state takes River's states, migration 00009), so a
-- state River adds is listed too.

-- name: TaskListPageByKind :many
SELECT * FROM tasks
WHERE id = ANY (ARRAY(
    SELECT r.id
    FROM unnest(enum_range(NULL::river_job_state)::text[]) AS s(state)
    CROSS JOIN LATERAL (SELECT r.id FROM task_records r
                        WHERE r.tenant = @tenant AND r.kind = @kind AND r.state = s.state
                          AND r.id < @after_id
                        ORDER BY r.id DESC
                        LIMIT @max) r
    ORDER BY r.id DESC
    LIMIT @max))
ORDER BY id DESC;

-- The state filters select the page's ids from task_records, whose state
-- is indexed, and read those rows through the view. A record that says
-- 'available' may belong to a running job (migration 00017): the
-- 'available' list leaves those out, and the 'running' list starts from
-- river_job's running jobs, which the workers bound, rather than from the
-- records. task.Service picks the query by state.

-- name: TaskListPageByState :many
SELECT * FROM tasks
WHERE id = ANY (ARRAY(
    SELECT r.id FROM task_records r
    WHERE r.tenant = @tenant AND r.state = @state AND r.id < @after_id
      AND (r.state <> 'available'
           OR NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = r.id AND j.state = 'running'))
    ORDER BY r.id DESC
    LIMIT @max))
ORDER BY id DESC;

-- name: TaskListPageByKindState :many
SELECT * FROM tasks
WHERE id = ANY (ARRAY(
    SELECT r.id FROM task_records r
    WHERE r.tenant = @tenant AND r.kind = @kind AND r.state = @state AND r.id < @after_id
      AND (r.state <> 'available'
           OR NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = r.id AND j.state = 'running'))
    ORDER BY r.id DESC
    LIMIT @max))
ORDER BY id DESC;

-- The running lists walk river_job's running jobs (its fetch index leads
-- with state), newest first, and keep the tenant's: written as a join, the
-- planner walks river_job's primary key instead, through every finished job
-- River keeps (a day's worth), and OFFSET 0 keeps the probe of the record
-- from being flattened into such a join.

-- name: TaskListPageRunning :many
SELECT * FROM tasks
WHERE id = ANY (ARRAY(
    SELECT j.id
    FROM (SELECT rj.id FROM river_job rj
          WHERE rj.state = 'running' AND rj.id < @after_id
          ORDER BY rj.id DESC) j
    CROSS JOIN LATERAL (SELECT 1 FROM task_records r
                        WHERE r.id = j.id AND r.tenant = @tenant
                        OFFSET 0) r
    ORDER BY j.id DESC
    LIMIT @max))
ORDER BY id DESC;

-- name: TaskListPageByKindRunning :many
SELECT * FROM tasks
WHERE id = ANY (ARRAY(
    SELECT j.id
    FROM (SELECT rj.id FROM river_job rj
          WHERE rj.state = 'running' AND rj.id < @after_id
          ORDER BY rj.id DESC) j
    CROSS JOIN LATERAL (SELECT 1 FROM task_records r
                        WHERE r.id = j.id AND r.tenant = @tenant AND r.kind = @kind
                        OFFSET 0) r
    ORDER BY j.id DESC
    LIMIT @max))
ORDER BY id DESC;

-- name: TaskProgressUpdate :execrows
UPDATE task_records SET progress = @progress WHERE id = @id;

-- A report from outside the worker (an http task's receiver) lands only
-- while the attempt it was made for runs.
-- name: TaskProgressUpdateRunning :execrows
UPDATE task_records r SET progress = @progress
WHERE r.id = @id
  AND EXISTS (SELECT 1 FROM river_job j WHERE j.id = r.id AND j.state = 'running' AND j.attempt = @attempt);

-- name: TaskCancelRequestedSet :exec
UPDATE task_records SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = @id;
