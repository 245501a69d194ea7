-- drover store on PostgreSQL, the webhook outbox (SQLite migration 0011). A trigger on the
-- `state` events adds one delivery per task end and per entry into `needs_input`, in the same
-- transaction as the state change, for a task whose team has a webhook URL: a crash can neither
-- lose one nor make two (`ON CONFLICT DO NOTHING` on the id).
CREATE TABLE webhook_deliveries (
    -- `whd_<task id>_<event seq>`: the `Drover-Delivery` header, the same on every retry.
    id           TEXT PRIMARY KEY,
    team         TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    -- `task.finished` | `task.needs_input`
    event        TEXT NOT NULL,
    -- The state event's time (the payload's `at`).
    at           TEXT COLLATE "C" NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_at      TEXT COLLATE "C" NOT NULL,
    -- The receiver's HTTP status of the last attempt (0: unreachable, or given up).
    last_status  BIGINT,
    delivered_at TEXT COLLATE "C"
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE delivered_at IS NULL;
CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id);

CREATE FUNCTION webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    st TEXT := NEW.data::jsonb ->> 'state';
BEGIN
    IF st IN ('succeeded', 'failed', 'cancelled', 'interrupted', 'needs_input') THEN
        INSERT INTO webhook_deliveries (id, team, task_id, event, at, next_at)
        SELECT 'whd_' || NEW.task_id || '_' || NEW.seq, t.team, t.id,
               CASE st WHEN 'needs_input' THEN 'task.needs_input' ELSE 'task.finished' END,
               NEW.ts, NEW.ts
        FROM tasks t JOIN teams tm ON tm.name = t.team
        WHERE t.id = NEW.task_id AND tm.webhook_url IS NOT NULL
        ON CONFLICT (id) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_outbox AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.kind = 'state') EXECUTE FUNCTION webhook_outbox();
