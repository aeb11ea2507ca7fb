-- One index of task_records fewer: every index costs each task twice, an
-- entry when it is inserted and another when its job finishes (the finish
-- changes state, which other indexes hold, so it cannot be a HOT update).
-- Measured in docs/performance.md ("Issue 11, round 2, third session").
--
-- (tenant, kind, id) served only the lists of a kind without a state
-- (GET /v1/tasks?kind=). Those now walk tasks_tenant_kind_state_id_idx
-- once per state, each walk stopping at the page size, and keep the newest
-- (internal/store/task.sql): at most 8 x the page size live entries,
-- whatever the table holds. (tenant, id) stays: the default list walks it,
-- and a walk per state would step over every entry that tasks finished
-- since the last vacuum left in the 'available' range.
--
-- Rolling deploy: a binary from before this version keeps working against
-- this schema (no column changes); only its ?kind= lists fall back to a
-- slower plan until it is replaced.

-- +goose Up
DROP INDEX IF EXISTS tasks_tenant_kind_id_idx;

-- +goose Down
-- On a large table this blocks writes to task_records while it builds.
CREATE INDEX IF NOT EXISTS tasks_tenant_kind_id_idx ON task_records (tenant, kind, id);
