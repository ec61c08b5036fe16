-- The runtime instances sharing this database, each alive while its heartbeat is fresh: an
-- instance whose heartbeat is older than its lease is dead, and a survivor records the calls it
-- left `running` as `interrupted` (docs/deployment.md).
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    lease_ms     INTEGER NOT NULL,
    stopped_at   INTEGER
);
CREATE INDEX instances_live ON instances (stopped_at, heartbeat_at);
