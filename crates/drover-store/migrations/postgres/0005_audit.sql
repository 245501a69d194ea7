-- drover store on PostgreSQL, the append-only audit log (SQLite migration 0013): one row per
-- mutating API call and per webhook delivery. The store has no update or delete path for it, and
-- the database refuses both (a trigger), whoever asks.
CREATE TABLE audit (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TEXT COLLATE "C" NOT NULL,
    -- The key and its team; both NULL for the host owner (or a call without a valid key).
    key_id      TEXT,
    team        TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    remote_addr TEXT,
    status      BIGINT NOT NULL
);
CREATE INDEX audit_team ON audit (team, seq);
CREATE INDEX audit_at ON audit (at);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only';
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
