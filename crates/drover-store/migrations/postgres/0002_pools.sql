-- drover store on PostgreSQL, pools (the end state of SQLite migrations 0002, 0004, 0005,
-- 0006, 0008, 0014). Column names and SQLite-compatible types: TEXT for times (RFC 3339 ms UTC,
-- compared as strings: COLLATE "C"), JSON and enums; BIGINT for integers (`notified` 0/1);
-- DOUBLE PRECISION for reals. A pool's counters are derived from its tasks.
CREATE TABLE pools (
    name               TEXT PRIMARY KEY,
    -- running | stopping | stopped | failed (failure streak) | done (count reached)
    state              TEXT NOT NULL,
    slots              BIGINT NOT NULL,
    prompt             TEXT NOT NULL,
    repo               TEXT NOT NULL,
    base_ref           TEXT NOT NULL,
    agent              TEXT NOT NULL,
    cmd                TEXT,
    model              TEXT,
    judge_model        TEXT,
    permissions        TEXT NOT NULL,
    count_total        BIGINT,
    max_failures       BIGINT NOT NULL,
    notify             TEXT,
    verify             TEXT NOT NULL DEFAULT '[]',
    verify_rounds      BIGINT NOT NULL DEFAULT 2,
    max_usd            DOUBLE PRECISION,
    created_at         TEXT COLLATE "C" NOT NULL,
    -- tasks created so far (the next task's number is launched + 1)
    launched           BIGINT NOT NULL DEFAULT 0,
    -- the failure streak counts tasks finished after this time
    streak_since       TEXT COLLATE "C" NOT NULL,
    notified           BIGINT NOT NULL DEFAULT 0,
    stop_reason        TEXT,
    allowed_models     TEXT,
    -- 'finish' (running tasks finish when the failure streak stops the pool) or 'hard'
    failure_policy     TEXT NOT NULL DEFAULT 'finish',
    timeout_secs       BIGINT,
    stall_timeout_secs BIGINT,
    protect            TEXT NOT NULL DEFAULT '[]',
    memory_bytes       BIGINT,
    cpus               DOUBLE PRECISION,
    pids               BIGINT,
    -- NULL: the host owner's pool (no team)
    team               TEXT
);

CREATE TABLE pool_events (
    pool TEXT NOT NULL,
    seq  BIGINT NOT NULL,
    ts   TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (pool, seq)
);
