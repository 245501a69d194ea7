-- drover store, version 2: quality gates, pools.
ALTER TABLE tasks ADD COLUMN verify_rounds INTEGER NOT NULL DEFAULT 2;
ALTER TABLE tasks ADD COLUMN gate_rounds INTEGER NOT NULL DEFAULT 0;
-- NULL: gates not run for the current turn; 'passed'; 'failed' (no rounds left).
ALTER TABLE tasks ADD COLUMN gate_status TEXT;
ALTER TABLE tasks ADD COLUMN judge_model TEXT;
CREATE INDEX tasks_pool ON tasks(pool, finished_at);

CREATE TABLE pools (
    name            TEXT PRIMARY KEY,
    -- running | stopping | stopped | failed (failure streak) | done (count reached)
    state           TEXT NOT NULL,
    slots           INTEGER NOT NULL,
    prompt          TEXT NOT NULL,
    repo            TEXT NOT NULL,
    base_ref        TEXT NOT NULL,
    agent           TEXT NOT NULL,
    cmd             TEXT,
    model           TEXT,
    judge_model     TEXT,
    permissions     TEXT NOT NULL,
    count_total     INTEGER,
    max_failures    INTEGER NOT NULL,
    notify          TEXT,
    verify          TEXT NOT NULL DEFAULT '[]',
    verify_rounds   INTEGER NOT NULL DEFAULT 2,
    max_usd         REAL,
    created_at      TEXT NOT NULL,
    -- tasks created so far (the next task's number is launched + 1)
    launched        INTEGER NOT NULL DEFAULT 0,
    -- the failure streak counts tasks finished after this time
    streak_since    TEXT NOT NULL,
    notified        INTEGER NOT NULL DEFAULT 0,
    stop_reason     TEXT
);

CREATE TABLE pool_events (
    pool TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    ts   TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (pool, seq)
) WITHOUT ROWID;
