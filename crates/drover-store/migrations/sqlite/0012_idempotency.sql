-- drover store, version 12: `Idempotency-Key` of `POST /v1/tasks` (docs/design.md §7). Within a
-- scope (a team, or the host owner) a key names one task for 24 hours; `body_hash` is SHA-256 of
-- the request's canonical JSON (a replay with another body is a 409). Written in the same
-- transaction as the task.
CREATE TABLE idempotency (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created_at ON idempotency (created_at);
