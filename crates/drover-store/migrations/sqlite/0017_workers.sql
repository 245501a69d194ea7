-- Many hosts (docs/design.md §8): the workers on this database. On SQLite, one: the daemon.
-- Times are RFC 3339 ms UTC; a worker is lapsed when last_heartbeat + lease_secs is past.
CREATE TABLE workers (
    name TEXT PRIMARY KEY NOT NULL,
    addr TEXT,
    started_at TEXT NOT NULL,
    last_heartbeat TEXT NOT NULL,
    slots INTEGER NOT NULL,
    lease_secs INTEGER NOT NULL
);
