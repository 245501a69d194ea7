-- Many hosts (docs/design.md §8): who holds a task, the only worker that may run it (a
-- local-path repo), and until when its lease holds (RFC 3339; renewed by its worker's heartbeat).
ALTER TABLE tasks ADD COLUMN worker TEXT;
ALTER TABLE tasks ADD COLUMN runs_on TEXT;
ALTER TABLE tasks ADD COLUMN lease_until TEXT;
CREATE INDEX tasks_worker ON tasks (worker, state);
