-- drover store on PostgreSQL, teams and their API keys (SQLite migrations 0010, 0015).
CREATE TABLE teams (
    name             TEXT PRIMARY KEY,
    max_usd_per_day  DOUBLE PRECISION,
    max_usd_per_task DOUBLE PRECISION,
    -- JSON list of model names; NULL: any model.
    allowed_models   TEXT,
    webhook_url      TEXT,
    created_at       TEXT COLLATE "C" NOT NULL,
    -- JSON list of directories and URL prefixes; NULL: any.
    allowed_repos    TEXT
);
-- Only a hash of each key is kept (SHA-256 of the secret, hex).
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    team         TEXT NOT NULL REFERENCES teams (name),
    name         TEXT,
    -- JSON list of scopes.
    scopes       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   TEXT COLLATE "C" NOT NULL,
    last_used_at TEXT COLLATE "C",
    expires_at   TEXT COLLATE "C",
    revoked_at   TEXT COLLATE "C",
    rotated_to   TEXT
);
CREATE INDEX api_keys_team ON api_keys (team, created_at);
