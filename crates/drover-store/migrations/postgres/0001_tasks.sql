-- Tasks, their events and idempotency keys on PostgreSQL: every column of the SQLite schema
-- (migrations/sqlite 0001–0016) under the same name, with SQLite-compatible types so both stores
-- decode the same rows (crate::rows): TEXT for times (RFC 3339 ms UTC), JSON and enums; BIGINT
-- for every integer (booleans stay 0/1); DOUBLE PRECISION for reals.

-- The FIFO position. A sequence, not MAX()+1: daemons creating tasks at once never collide;
-- a requeue takes the next value too.
CREATE SEQUENCE tasks_queue_seq;

CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    queue_seq          BIGINT NOT NULL DEFAULT nextval('tasks_queue_seq'),
    name               TEXT,
    state              TEXT NOT NULL,
    agent              TEXT NOT NULL,
    model              TEXT,
    repo               TEXT NOT NULL,
    repo_dir           TEXT,
    base_ref           TEXT NOT NULL,
    base_commit        TEXT,
    branch             TEXT NOT NULL,
    prompt             TEXT NOT NULL,
    cmd                TEXT,
    verify             TEXT NOT NULL DEFAULT '[]',
    permissions        TEXT NOT NULL DEFAULT 'ask',
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    result             TEXT,
    verdict            TEXT,
    reason             TEXT,
    error_kind         TEXT,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd           DOUBLE PRECISION,
    max_usd            DOUBLE PRECISION,
    max_tokens         BIGINT,
    session_id         TEXT,
    commit_sha         TEXT,
    pool               TEXT,
    team               TEXT,
    created_by         TEXT,
    sandbox            TEXT,
    sandbox_kind       TEXT,
    pending_input      TEXT,
    shim_pid           BIGINT,
    shim_start         BIGINT,
    pid                BIGINT,
    pgid               BIGINT,
    agent_start        BIGINT,
    stdout_offset      BIGINT NOT NULL DEFAULT 0,
    stderr_offset      BIGINT NOT NULL DEFAULT 0,
    turns_sent         BIGINT NOT NULL DEFAULT 0,
    turns_done         BIGINT NOT NULL DEFAULT 0,
    -- The fencing token of the current claim (a claim adds one: a first run is attempt 1).
    attempt            BIGINT NOT NULL DEFAULT 0,
    stop_requested     BIGINT NOT NULL DEFAULT 0,
    next_seq           BIGINT NOT NULL DEFAULT 1,
    verify_rounds      BIGINT NOT NULL DEFAULT 2,
    gate_rounds        BIGINT NOT NULL DEFAULT 0,
    gate_status        TEXT,
    judge_model        TEXT,
    stop_reason        TEXT,
    metered_by         TEXT NOT NULL DEFAULT 'agent',
    agent_cost_usd     DOUBLE PRECISION,
    agent_usage        TEXT,
    timeout_secs       BIGINT,
    stall_timeout_secs BIGINT,
    activity_at        TEXT,
    pending_since      TEXT,
    stop_requested_at  TEXT,
    stop_step          BIGINT NOT NULL DEFAULT 0,
    stop_step_at       TEXT,
    protect            TEXT NOT NULL DEFAULT '[]',
    -- Short copies for list pages (the trigger below; SQLite's migration 0007).
    prompt_head        TEXT NOT NULL DEFAULT '',
    result_head        TEXT,
    cmd_head           TEXT,
    memory_bytes       BIGINT,
    cpus               DOUBLE PRECISION,
    pids               BIGINT,
    isolation          TEXT,
    peak_memory_bytes  BIGINT,
    cpu_seconds        DOUBLE PRECISION,
    tags               TEXT NOT NULL DEFAULT '{}',
    -- The worker holding the task's claim, the one a local-path repo pins it to, and the end
    -- of the claim's lease (the database's clock, RFC 3339 ms UTC).
    worker             TEXT,
    runs_on            TEXT,
    lease_until        TEXT
);
ALTER SEQUENCE tasks_queue_seq OWNED BY tasks.queue_seq;

CREATE INDEX tasks_state ON tasks (state, queue_seq);
CREATE INDEX tasks_queue_seq_idx ON tasks (queue_seq);
CREATE INDEX tasks_pool ON tasks (pool, finished_at);
CREATE INDEX tasks_finished ON tasks (finished_at, id);
CREATE INDEX tasks_worker ON tasks (worker, state);

-- The 500-character rule of SQLite's 0007 (characters, then `…`), kept by a BEFORE trigger so
-- every INSERT and UPDATE of prompt, result or cmd refreshes the copies in the same row write.
CREATE FUNCTION drover_head(t TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN char_length(t) > 500 THEN left(t, 500) || '…' ELSE t END
$$;

CREATE FUNCTION tasks_heads() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.prompt_head := COALESCE(drover_head(NEW.prompt), '');
    NEW.result_head := drover_head(NEW.result);
    NEW.cmd_head := drover_head(NEW.cmd);
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_heads_insert BEFORE INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_heads();
CREATE TRIGGER tasks_heads_update BEFORE UPDATE OF prompt, result, cmd ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_heads();

CREATE TABLE events (
    task_id TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    ts      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE idempotency (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created_at ON idempotency (created_at);

-- A time as drover writes it (`drover_store::now()`: RFC 3339, milliseconds, UTC, `Z`), so times
-- from the database's clock (leases: `drover_time(now() + …)`) compare as text with the others.
CREATE FUNCTION drover_time(t TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
