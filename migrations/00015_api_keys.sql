-- API keys: every /v1 request names its tenant with a key (issue 10).
--
-- A key is shown once, when it is created; only its SHA-256 is stored, with
-- a short public prefix for lookup, display and revocation. Keys are never
-- deleted: a revoked key keeps its row, so that its prefix is never reused
-- and `handoff keys list` shows the history.
--
-- Rolling deploy: safe (a new table; old binaries do not read it).

-- +goose Up
CREATE TABLE api_keys (
    prefix       text        PRIMARY KEY,
    key_hash     bytea       NOT NULL,
    tenant       text        NOT NULL,
    name         text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_hash_check CHECK (octet_length(key_hash) = 32),
    CONSTRAINT api_keys_tenant_check CHECK (tenant ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    CONSTRAINT api_keys_name_check CHECK (char_length(name) <= 200)
);

-- +goose Down
DROP TABLE IF EXISTS api_keys;
