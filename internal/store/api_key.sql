-- name: APIKeyInsert :one
INSERT INTO api_keys (prefix, key_hash, tenant, name)
VALUES (@prefix, @key_hash, @tenant, @name)
RETURNING *;

-- name: APIKeyGetByPrefix :one
SELECT * FROM api_keys WHERE prefix = @prefix;

-- name: APIKeyList :many
SELECT * FROM api_keys ORDER BY created_at, prefix;

-- name: APIKeyRevoke :one
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE prefix = @prefix
RETURNING *;

-- name: APIKeyTouch :exec
UPDATE api_keys SET last_used_at = now()
WHERE prefix = @prefix AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: APIKeyActiveExists :one
SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL);

-- APIKeyAnyExists is true once a key was ever made, revoked or not: then
-- the API needs keys (revoking the last key does not open it again).
-- name: APIKeyAnyExists :one
SELECT EXISTS (SELECT 1 FROM api_keys);
