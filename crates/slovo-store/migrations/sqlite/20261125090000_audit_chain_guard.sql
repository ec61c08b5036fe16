-- The database refuses any audit event that does not extend the chain head: its sequence
-- number must be the head's plus one and its prev_hash the head's hash. The call path hashes
-- against the head it last saw and relies on this check instead of reading the head first
-- (see slovo-store's call_writer); for every other writer it is a second line of defence.
CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events
WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1)
  OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit event does not extend the audit chain head');
END;
