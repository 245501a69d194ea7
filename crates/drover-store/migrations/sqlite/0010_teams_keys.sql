-- drover store, version 10: teams and their API keys (docs/design.md §7).
CREATE TABLE teams (
    name TEXT PRIMARY KEY,
    max_usd_per_day REAL,
    max_usd_per_task REAL,
    -- JSON list of model names; NULL: any model.
    allowed_models TEXT,
    webhook_url TEXT,
    created_at TEXT NOT NULL
);
-- Only a hash of each key is kept (SHA-256 of the secret, hex).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL REFERENCES teams(name),
    name TEXT,
    -- JSON list of scopes.
    scopes TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    expires_at TEXT,
    revoked_at TEXT,
    rotated_to TEXT
);
CREATE INDEX api_keys_team ON api_keys (team, created_at);
