-- drover store, version 14: a pool's team (docs/design.md §7). A key's `POST /v1/pools` makes a
-- pool of its team, whose tasks carry that team; an API key sees only its team's pools. NULL: the
-- host owner's pool (no team).
ALTER TABLE pools ADD COLUMN team TEXT;
