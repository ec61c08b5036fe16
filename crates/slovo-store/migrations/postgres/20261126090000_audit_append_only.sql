-- Audit events are append-only: the database refuses to change or remove one (see the SQLite
-- migration of the same name). TRUNCATE skips row triggers, so it has its own.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The chain head only moves forward, one event at a time (`audit_head_follows`), or stays
-- where it is (the lock `Store::begin` takes). Moving it back is how a truncation is hidden.
CREATE FUNCTION audit_head_moves_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id
       OR NEW.seq NOT IN (OLD.seq, OLD.seq + 1)
       OR (NEW.seq = OLD.seq AND NEW.hash IS DISTINCT FROM OLD.hash) THEN
        RAISE EXCEPTION 'the audit chain head only moves forward (% to %)', OLD.seq, NEW.seq;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_moves_forward();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The newest signed checkpoint each installation wrote to its log outside the database (see
-- the SQLite migration of the same name and docs/audit.md).
CREATE TABLE audit_checkpoints (
    key        TEXT PRIMARY KEY,
    n          BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    line_hash  TEXT NOT NULL,
    at_ms      BIGINT NOT NULL
);
