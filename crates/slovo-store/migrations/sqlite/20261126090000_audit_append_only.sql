-- Audit events are append-only: the database refuses to change or remove one. Nothing in Slovo
-- updates or deletes them; this is one more layer in front of the hash chain and the signed
-- checkpoints outside the database, which still catch someone who drops these triggers first.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused');
END;

-- The chain head only moves forward, one event at a time (`audit_head_follows`), or stays
-- where it is (the lock `Store::begin` takes). Moving it back is how a truncation is hidden.
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
WHEN NEW.id IS NOT OLD.id
  OR NEW.seq NOT IN (OLD.seq, OLD.seq + 1)
  OR (NEW.seq = OLD.seq AND NEW.hash IS NOT OLD.hash)
BEGIN
    SELECT RAISE(ABORT, 'the audit chain head only moves forward');
END;

CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'the audit chain head cannot be deleted');
END;

-- The newest signed checkpoint each installation (identified by its checkpoint public key)
-- wrote to its checkpoint log outside the database. A log found shorter than this was rolled
-- back; see docs/audit.md. Not audited: it is a copy of what the log already says.
CREATE TABLE audit_checkpoints (
    key        TEXT PRIMARY KEY,
    n          INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    line_hash  TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
