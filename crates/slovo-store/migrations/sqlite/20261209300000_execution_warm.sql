-- A call served by a warm (pooled) MCP sandbox: how long its server waited for the call, as
-- JSON ({"started_ms_before_call": N, "ready_ms_before_call": M}). NULL for a call started
-- cold and for every call recorded before this column existed.
ALTER TABLE executions ADD COLUMN warm TEXT;
