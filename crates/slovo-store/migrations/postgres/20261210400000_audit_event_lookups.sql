-- Reading the audit trail without scanning it (docs/audit.md, "Reading every chain").
-- By kind within a chain: the newest `audit.chains_anchored` and every `audit.chain_opened`
-- of chain 1 (the checkpointer and `audit verify`), and the anchors paged in order.
CREATE INDEX audit_events_by_kind ON audit_events (chain, kind, seq);
-- The order in which the events of every chain are shown together, newest first, paged by
-- a cursor on the same key: (time, chain, sequence number).
CREATE INDEX audit_events_by_time ON audit_events (at_ms, chain, seq);
