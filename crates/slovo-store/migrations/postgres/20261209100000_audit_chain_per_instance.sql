-- An audit chain per instance (docs/audit.md, "Several writers"). The existing chain is chain
-- 1 and keeps every event and hash; an instance sharing the database writes its calls' results
-- to a chain of its own, opened by an `audit.chain_opened` event on chain 1, so that instances
-- no longer queue on one head. `(chain, seq)` identifies an event; each head row is a chain's.
ALTER TABLE audit_events ADD COLUMN chain BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD PRIMARY KEY (chain, seq);

ALTER TABLE audit_head DROP CONSTRAINT audit_head_id_check;
ALTER TABLE audit_head ADD CONSTRAINT audit_head_id_check CHECK (id >= 1);
-- The instance that writes the chain (NULL for chain 1, which every instance writes).
ALTER TABLE audit_head ADD COLUMN instance TEXT UNIQUE;

-- The guards of the single chain, now per chain: an event extends its own chain's head, and
-- the head it extends follows it.
CREATE OR REPLACE FUNCTION audit_event_extends_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq  BIGINT;
    head_hash TEXT;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = NEW.chain;
    IF NEW.seq IS DISTINCT FROM head_seq + 1 OR NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION 'audit event % of chain % does not extend the audit chain head (%)',
            NEW.seq, NEW.chain, head_seq;
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION audit_head_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = NEW.chain;
    RETURN NULL;
END;
$$;

-- A new chain's head starts at its opening event: sequence number 0 and the hash of an
-- `audit.chain_opened` event on chain 1 that names this chain and instance. A head made up
-- for a chain nobody opened is refused, as a head moved back is.
CREATE FUNCTION audit_head_starts_at_opening() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> 0 OR NOT EXISTS (
        SELECT 1 FROM audit_events
        WHERE chain = 1 AND kind = 'audit.chain_opened' AND hash = NEW.hash
          AND (payload::json ->> 'chain')::bigint = NEW.id
          AND payload::json ->> 'instance' IS NOT DISTINCT FROM NEW.instance
    ) THEN
        RAISE EXCEPTION 'audit chain % does not start at an audit.chain_opened event naming it', NEW.id;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_head_opened BEFORE INSERT ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_starts_at_opening();

-- As before, one INSERT per event so the guards check every link; now with each event's chain.
CREATE OR REPLACE FUNCTION audit_append(events json) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    FOR e IN
        SELECT * FROM json_to_recordset(events) AS x(chain BIGINT, seq BIGINT, at_ms BIGINT,
            kind TEXT, tool TEXT, actor TEXT, payload TEXT, prev_hash TEXT, hash TEXT)
        ORDER BY chain, seq
    LOOP
        INSERT INTO audit_events (chain, seq, at_ms, kind, tool, actor, payload, prev_hash, hash)
        VALUES (COALESCE(e.chain, 1), e.seq, e.at_ms, e.kind, e.tool, e.actor, e.payload,
                e.prev_hash, e.hash);
    END LOOP;
END;
$$;
