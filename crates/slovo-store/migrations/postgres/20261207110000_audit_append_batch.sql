-- Appends prepared audit events, given as a JSON array, one INSERT each and in sequence order,
-- so that the chain's guards check every link: `audit_events_extend_head` before each row and
-- `audit_head_follows` after it (an AFTER row trigger of one many-row INSERT would fire only at
-- the statement's end, and the second row would not extend the head). Used to write a batch of
-- calls' results and events in one transaction (`finish_batch` in slovo-store).
CREATE FUNCTION audit_append(events json) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    FOR e IN
        SELECT * FROM json_to_recordset(events) AS x(seq BIGINT, at_ms BIGINT, kind TEXT,
            tool TEXT, actor TEXT, payload TEXT, prev_hash TEXT, hash TEXT)
        ORDER BY seq
    LOOP
        INSERT INTO audit_events (seq, at_ms, kind, tool, actor, payload, prev_hash, hash)
        VALUES (e.seq, e.at_ms, e.kind, e.tool, e.actor, e.payload, e.prev_hash, e.hash);
    END LOOP;
END;
$$;
