-- drover store, version 3: the gateway's metering.
-- Why a stop was requested: 'user' or 'budget_exceeded'.
ALTER TABLE tasks ADD COLUMN stop_reason TEXT;
-- 'gateway' when the task's traffic goes through drover's gateway (usage/cost come from the
-- wire), else 'agent' (the agent's own figures).
ALTER TABLE tasks ADD COLUMN metered_by TEXT NOT NULL DEFAULT 'agent';
-- The agent's own figures, kept beside the gateway's as a cross-check.
ALTER TABLE tasks ADD COLUMN agent_cost_usd REAL;
ALTER TABLE tasks ADD COLUMN agent_usage TEXT;

CREATE TABLE usage (
    id                 INTEGER PRIMARY KEY,
    task_id            TEXT NOT NULL,
    pool               TEXT,
    team               TEXT,
    api                TEXT NOT NULL,
    model              TEXT NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_usd           REAL,
    stop_reason        TEXT,
    outcome            TEXT NOT NULL,
    at                 TEXT NOT NULL
);
CREATE INDEX usage_task ON usage(task_id);
CREATE INDEX usage_pool ON usage(pool);
CREATE INDEX usage_team_at ON usage(team, at);
