-- Watches of live task events (migration 00013): a row per task and process
-- while the process streams that task to a client.

-- TaskWatchInsert also waits for a change of the task's job that is being
-- committed now, and holds the job's row until the watch commits: a change
-- either commits before the watch (the read that follows Subscribe sees it)
-- or starts after it (and its trigger sees the watch and notifies). Without
-- it, a fetch whose trigger ran just before the watch committed, but which
-- committed just after the read, was heard of only at the task's next change
-- (migration 00017 copies a fetch only for a watched task). River's fetch
-- skips a locked row (SKIP LOCKED) and takes it at its next fetch.
-- name: TaskWatchInsert :exec
WITH watched AS (
    INSERT INTO task_watch (task_id, owner) VALUES (@task_id, @owner)
    ON CONFLICT (task_id, owner) DO UPDATE SET seen_at = now()
    RETURNING task_id)
SELECT 1 FROM river_job j, watched w WHERE j.id = w.task_id FOR SHARE OF j;

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
