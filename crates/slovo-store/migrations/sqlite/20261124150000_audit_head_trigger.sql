-- The audit head follows every appended event inside the appending statement, saving the
-- call path one statement per audited write. `Store::begin` still locks the head first.
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_events
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
END;
