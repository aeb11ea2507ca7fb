-- Watches of live task events (migration 00013): a row per task and process
-- while the process streams that task to a client.

-- name: TaskWatchInsert :exec
INSERT INTO task_watch (task_id, owner) VALUES (@task_id, @owner)
ON CONFLICT (task_id, owner) DO UPDATE SET seen_at = now();

-- name: TaskWatchInsertMany :exec
INSERT INTO task_watch (task_id, owner)
SELECT unnest(@task_ids::bigint[]), @owner
ON CONFLICT (task_id, owner) DO UPDATE SET seen_at = now();

-- name: TaskWatchDelete :exec
DELETE FROM task_watch WHERE task_id = @task_id AND owner = @owner;

-- name: TaskWatchDeleteByOwner :exec
DELETE FROM task_watch WHERE owner = @owner;

-- name: TaskWatchTouch :exec
UPDATE task_watch SET seen_at = now() WHERE owner = @owner;

-- name: TaskWatchSweep :execrows
DELETE FROM task_watch WHERE seen_at < @before;

-- name: TaskEventsListen :exec
LISTEN handoff_task;
