-- Two indexes fewer on task_records: every index costs each task twice, an
-- entry when it is inserted and another when its job finishes (the finish
-- changes state, which the other indexes hold, so it cannot be a HOT
-- update). Measured in docs/performance.md ("Fewer indexes").
--
-- (tenant, id) and (tenant, kind, id) served only the unfiltered lists
-- (GET /v1/tasks with no ?state=). Those lists now walk
-- tasks_tenant_state_id_idx and tasks_tenant_kind_state_id_idx once per
-- state, each walk stopping at the page size, and keep the newest
-- (internal/store/task.sql): at most 8 x the page size index entries,
-- whatever the table holds.
--
-- Rolling deploy: a binary from before this version keeps working against
-- this schema (no column changes); only its unfiltered lists fall back to a
-- slower plan (the primary key, filtered by tenant) until it is replaced.

-- +goose Up
DROP INDEX IF EXISTS tasks_tenant_id_idx;
DROP INDEX IF EXISTS tasks_tenant_kind_id_idx;

-- +goose Down
CREATE INDEX IF NOT EXISTS tasks_tenant_id_idx ON task_records (tenant, id);
CREATE INDEX IF NOT EXISTS tasks_tenant_kind_id_idx ON task_records (tenant, kind, id);
