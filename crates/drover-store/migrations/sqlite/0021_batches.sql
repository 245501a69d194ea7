-- Batches (docs/design.md §9): one prompt, one task per repository, grouped under a name.
-- Tasks name their batch in `tasks.batch` (0019). What a retry needs to make a repository's next
-- task is kept here (the tasks' own rows hold the rest). JSON in TEXT columns.
CREATE TABLE batches (
    name               TEXT PRIMARY KEY,
    -- running | stopped
    state              TEXT NOT NULL,
    -- NULL: the host owner's batch (no team)
    team               TEXT,
    created_by         TEXT,
    created_at         TEXT NOT NULL,
    stopped_at         TEXT,
    -- the repositories, in the order given (JSON list of strings, as stored in tasks.repo)
    repos              TEXT NOT NULL,
    prompt             TEXT NOT NULL,
    base_ref           TEXT NOT NULL,
    agent              TEXT NOT NULL,
    cmd                TEXT,
    model              TEXT,
    judge_model        TEXT,
    -- at most this many of its tasks claimed or active at once; NULL: no limit of its own
    slots              INTEGER,
    -- the PR options (JSON), NULL: no PR
    pr                 TEXT,
    permissions        TEXT NOT NULL,
    verify             TEXT NOT NULL DEFAULT '[]',
    verify_rounds      INTEGER NOT NULL DEFAULT 2,
    max_usd            REAL,
    max_tokens         INTEGER,
    timeout_secs       INTEGER,
    stall_timeout_secs INTEGER,
    protect            TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX batches_team ON batches (team);
