-- Build locks in the store (docs/design.md §8): one row per `drover lock` call (a ticket),
-- a waiter (held = 0) until granted, then a holder (held = 1); deleted when its connection
-- closes, or with its worker (`release_worker`). `seq` orders arrivals (first come, first served).
CREATE TABLE locks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    slots INTEGER NOT NULL,
    holder TEXT NOT NULL,
    worker TEXT NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    since TEXT NOT NULL
);
CREATE INDEX locks_name ON locks (name, seq);
CREATE INDEX locks_worker ON locks (worker);
