-- Calls' results and their audit events written in one statement (`finish_batch` in
-- slovo-store, "on a known head"): an instance that is the only writer of its audit chain knows
-- the chain's head, hashes its events against it, and sends the results and the events
-- together. The statement is its own transaction: every result is written over a `running`
-- record and every event appended, or nothing is (an exception rolls the whole statement
-- back). The chain's guards check each link exactly as before (`audit_append`: one INSERT per
-- event, `audit_events_extend_head` before it, `audit_head_follows` after it), so a head that
-- moved meanwhile is refused, and the caller writes the batch again the locking way.
CREATE FUNCTION audit_finish_calls(results json, events json) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    written BIGINT;
BEGIN
    UPDATE executions AS e SET status = r.status, output = r.output, stderr = r.stderr,
        error = r.error, exit_code = r.exit_code, duration_ms = r.duration_ms, cpu_ms = r.cpu_ms,
        peak_memory_bytes = r.peak_memory_bytes, sandbox_id = r.sandbox_id,
        finished_at = r.finished_at, network_denials = r.network_denials, warm = r.warm
    FROM json_to_recordset(results) AS r(id TEXT, status TEXT, output TEXT, stderr TEXT,
        error TEXT, exit_code BIGINT, duration_ms BIGINT, cpu_ms BIGINT, peak_memory_bytes BIGINT,
        sandbox_id TEXT, finished_at BIGINT, network_denials TEXT, warm TEXT)
    WHERE e.id = r.id AND e.status = 'running';
    GET DIAGNOSTICS written = ROW_COUNT;
    IF written <> json_array_length(results) OR json_array_length(results) <> json_array_length(events) THEN
        RAISE EXCEPTION 'audit_finish_calls: % of % calls were still running', written,
            json_array_length(results);
    END IF;
    PERFORM audit_append(events);
END;
$$;
