-- Queue health for /metrics and GET /v1/queues. River's tables are only read
-- here; changes to queues go through River's client (QueuePause, QueueResume).

-- QueueDepth counts the jobs that are not finished, by queue and state. It
-- reads river_job_prioritized_fetching_index (state, queue, priority,
-- scheduled_at, id) only for the five unfinished states, never the finished
-- history (docs/operations.md shows the plan at a million rows).

-- name: QueueDepth :many
SELECT queue::text AS queue, state::text AS state, count(*)::bigint AS jobs
FROM river_job
WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
GROUP BY queue, state;

-- QueueOldestAvailable finds, per queue with available jobs, the earliest
-- scheduled_at among them and its age. A loose index scan walks the distinct
-- queues of available jobs, then takes the first entry of each priority (River
-- allows 1 to 4) from the same index: a few index probes per queue, however
-- many rows wait.

-- name: QueueOldestAvailable :many
WITH RECURSIVE queues(queue) AS (
    (SELECT j.queue FROM river_job j WHERE j.state = 'available' ORDER BY j.queue LIMIT 1)
    UNION ALL
    SELECT (
        SELECT j.queue FROM river_job j
        WHERE j.state = 'available' AND j.queue > queues.queue
        ORDER BY j.queue LIMIT 1
    )
    FROM queues
    WHERE queues.queue IS NOT NULL
)
SELECT
    queues.queue::text AS queue,
    oldest.scheduled_at::timestamptz AS scheduled_at,
    greatest(extract(epoch FROM now() - oldest.scheduled_at), 0)::float8 AS age_seconds
FROM queues
CROSS JOIN LATERAL (
    SELECT min(first.scheduled_at) AS scheduled_at
    FROM unnest('{1,2,3,4}'::smallint[]) AS prio(priority)
    CROSS JOIN LATERAL (
        SELECT j.scheduled_at FROM river_job j
        WHERE j.state = 'available' AND j.queue = queues.queue AND j.priority = prio.priority
        ORDER BY j.scheduled_at
        LIMIT 1
    ) AS first
) AS oldest
WHERE queues.queue IS NOT NULL;

-- RiverLeader is River's elected leader, if its lease has not expired: the
-- process that runs the rescuer, the cleaner and the scheduler.

-- name: RiverLeader :many
SELECT leader_id, elected_at, expires_at
FROM river_leader
WHERE expires_at > now();
