-- Connections the egress proxy refused during a call (host, port, reason), as a JSON array;
-- NULL when there were none.
ALTER TABLE executions ADD COLUMN network_denials TEXT;
