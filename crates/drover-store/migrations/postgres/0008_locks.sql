-- Build locks shared by every worker (docs/design.md §8): one row per `drover lock` call (a
-- ticket), a waiter (held = 0) until granted, then a holder (held = 1); deleted when its
-- connection closes, or with its worker (`release_worker`). `seq` orders arrivals. A grant
-- takes `pg_advisory_xact_lock` on the name, so concurrent workers count holders one at a time.
CREATE TABLE locks (
    seq BIGSERIAL PRIMARY KEY,
    ticket TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    slots BIGINT NOT NULL,
    holder TEXT NOT NULL,
    worker TEXT NOT NULL,
    held BIGINT NOT NULL DEFAULT 0,
    since TEXT NOT NULL
);
CREATE INDEX locks_name ON locks (name, seq);
CREATE INDEX locks_worker ON locks (worker);
