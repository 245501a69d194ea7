-- drover store, version 13: the append-only audit log (docs/design.md §7): one row per mutating
-- API call and per webhook delivery. The store has no update or delete path for it.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    -- The key and its team; both NULL for the host owner (or a call without a valid key).
    key_id TEXT,
    team TEXT,
    action TEXT NOT NULL,
    target TEXT,
    remote_addr TEXT,
    status INTEGER NOT NULL
);
CREATE INDEX audit_team ON audit (team, seq);
CREATE INDEX audit_at ON audit (at);
-- Accounting rows are read from finished tasks by finished_at.
CREATE INDEX tasks_finished ON tasks (finished_at, id);
