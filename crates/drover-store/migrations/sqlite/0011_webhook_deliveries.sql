-- drover store, version 11: the webhook outbox (docs/design.md §7, webhooks). A trigger on the
-- `state` events adds one delivery per task end and per entry into `needs_input`, in the same
-- transaction as the state change, for a task whose team has a webhook URL: a crash can neither
-- lose one nor make two. The daemon's delivery worker sends due rows and records each attempt.
CREATE TABLE webhook_deliveries (
    -- `whd_<task id>_<event seq>`: the `Drover-Delivery` header, the same on every retry.
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    task_id TEXT NOT NULL,
    -- `task.finished` | `task.needs_input`
    event TEXT NOT NULL,
    -- The state event's time (the payload's `at`).
    at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL,
    -- The receiver's HTTP status of the last attempt (0: unreachable, or given up).
    last_status INTEGER,
    delivered_at TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE delivered_at IS NULL;

CREATE TRIGGER webhook_outbox AFTER INSERT ON events
WHEN NEW.kind = 'state'
 AND json_extract(NEW.data, '$.state')
     IN ('succeeded', 'failed', 'cancelled', 'interrupted', 'needs_input')
BEGIN
    INSERT OR IGNORE INTO webhook_deliveries (id, team, task_id, event, at, next_at)
    SELECT 'whd_' || NEW.task_id || '_' || NEW.seq, t.team, t.id,
           CASE json_extract(NEW.data, '$.state')
               WHEN 'needs_input' THEN 'task.needs_input' ELSE 'task.finished' END,
           NEW.ts, NEW.ts
    FROM tasks t JOIN teams tm ON tm.name = t.team
    WHERE t.id = NEW.task_id AND tm.webhook_url IS NOT NULL;
END;
