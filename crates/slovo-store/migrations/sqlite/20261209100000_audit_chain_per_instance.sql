-- SQLite keeps one audit chain, chain 1: one process writes the database, so there is no
-- head to share (see the PostgreSQL migration of the same name, docs/audit.md). The columns
-- exist so that both databases are read alike; the CHECK and the existing `id = 1` head keep
-- every event on chain 1.
ALTER TABLE audit_events ADD COLUMN chain INTEGER NOT NULL DEFAULT 1 CHECK (chain = 1);
ALTER TABLE audit_head ADD COLUMN instance TEXT;
