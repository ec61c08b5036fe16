-- Which runtime instance recorded an execution, so that a restarted instance can tell its own
-- calls cut short by a crash from calls another instance (sharing PostgreSQL) is still running.
ALTER TABLE executions ADD COLUMN instance_id TEXT;
CREATE INDEX executions_running_by_instance ON executions (status, instance_id);
