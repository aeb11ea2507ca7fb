-- name: TaskGetByID :one
SELECT * FROM tasks WHERE id = @id;

-- name: TaskGetByIdempotencyKey :one
SELECT * FROM tasks WHERE idempotency_key = @idempotency_key;

-- The list queries are four plain statements rather than one with optional
-- filters: each then has a plan that walks one index backwards from the
-- cursor, which a generic plan for "x = $1 OR $1 IS NULL" would not.

-- name: TaskListPage :many
SELECT * FROM tasks
WHERE id < @after_id
ORDER BY id DESC
LIMIT @max;

-- name: TaskListPageByState :many
SELECT * FROM tasks
WHERE state = @state AND id < @after_id
ORDER BY id DESC
LIMIT @max;

-- name: TaskListPageByKind :many
SELECT * FROM tasks
WHERE kind = @kind AND id < @after_id
ORDER BY id DESC
LIMIT @max;

-- name: TaskListPageByKindState :many
SELECT * FROM tasks
WHERE kind = @kind AND state = @state AND id < @after_id
ORDER BY id DESC
LIMIT @max;

-- name: TaskProgressUpdate :execrows
UPDATE tasks SET progress = @progress WHERE id = @id;

-- name: TaskCancelRequestedSet :exec
UPDATE tasks SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = @id;
