-- Many hosts (docs/design.md §8): every daemon on the database. Times are RFC 3339 ms UTC text
-- from the database's clock (the format of drover_store::now, compared as strings); a worker is
-- lapsed when last_heartbeat + lease_secs is past.
CREATE TABLE workers (
    name TEXT PRIMARY KEY NOT NULL,
    addr TEXT,
    started_at TEXT NOT NULL,
    last_heartbeat TEXT NOT NULL,
    slots BIGINT NOT NULL,
    lease_secs BIGINT NOT NULL
);
