-- The database refuses any audit event that does not extend the chain head: its sequence
-- number must be the head's plus one and its prev_hash the head's hash (see the SQLite
-- migration of the same name; here it is a second line of defence behind `Store::begin`'s
-- head lock).
CREATE FUNCTION audit_event_extends_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq  BIGINT;
    head_hash TEXT;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = 1;
    IF NEW.seq IS DISTINCT FROM head_seq + 1 OR NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION 'audit event % does not extend the audit chain head (%)', NEW.seq, head_seq;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_event_extends_head();
