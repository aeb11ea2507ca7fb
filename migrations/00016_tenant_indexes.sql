-- Tenant-scoped lists (issue 10): every list query names a tenant, so the
-- list indexes lead with it, and each list still walks one index backwards
-- from its cursor (EXPLAIN in docs/security.md). tasks_tenant_state_id_idx
-- also serves the per-tenant count of unfinished tasks (TaskUnfinishedCount).
--
-- The old indexes go: they would cost every task write and serve no query
-- of this version. Rolling deploy: a binary from before this version keeps
-- working against this schema (no column changes); only its filtered lists
-- (?state=, ?kind=) fall back to a slower plan until it is replaced.

-- +goose Up
CREATE INDEX IF NOT EXISTS tasks_tenant_id_idx ON tasks (tenant, id);
CREATE INDEX IF NOT EXISTS tasks_tenant_state_id_idx ON tasks (tenant, state, id);
CREATE INDEX IF NOT EXISTS tasks_tenant_kind_id_idx ON tasks (tenant, kind, id);
CREATE INDEX IF NOT EXISTS tasks_tenant_kind_state_id_idx ON tasks (tenant, kind, state, id);
DROP INDEX IF EXISTS tasks_state_id_idx;
DROP INDEX IF EXISTS tasks_kind_id_idx;
DROP INDEX IF EXISTS tasks_kind_state_id_idx;

-- +goose Down
CREATE INDEX tasks_state_id_idx ON tasks (state, id);
CREATE INDEX tasks_kind_id_idx ON tasks (kind, id);
CREATE INDEX tasks_kind_state_id_idx ON tasks (kind, state, id);
DROP INDEX tasks_tenant_id_idx;
DROP INDEX tasks_tenant_state_id_idx;
DROP INDEX tasks_tenant_kind_id_idx;
DROP INDEX tasks_tenant_kind_state_id_idx;
