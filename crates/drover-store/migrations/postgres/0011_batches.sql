-- Batches (docs/design.md §9): SQLite migration 0021 with the same columns (TEXT times compared
-- as strings, BIGINT integers, DOUBLE PRECISION reals). A claim locks the rows of the batches
-- whose queued tasks it looks at (`FOR UPDATE`), so two workers never both take a batch's last
-- slot.
CREATE TABLE batches (
    name               TEXT PRIMARY KEY,
    state              TEXT NOT NULL,
    team               TEXT,
    created_by         TEXT,
    created_at         TEXT COLLATE "C" NOT NULL,
    stopped_at         TEXT COLLATE "C",
    repos              TEXT NOT NULL,
    prompt             TEXT NOT NULL,
    base_ref           TEXT NOT NULL,
    agent              TEXT NOT NULL,
    cmd                TEXT,
    model              TEXT,
    judge_model        TEXT,
    slots              BIGINT,
    pr                 TEXT,
    permissions        TEXT NOT NULL,
    verify             TEXT NOT NULL DEFAULT '[]',
    verify_rounds      BIGINT NOT NULL DEFAULT 2,
    max_usd            DOUBLE PRECISION,
    max_tokens         BIGINT,
    timeout_secs       BIGINT,
    stall_timeout_secs BIGINT,
    protect            TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX batches_team ON batches (team);
