-- Slovo Tools schema, PostgreSQL flavour. Every *_at column is Unix milliseconds.
-- Keep in step with ../sqlite/0001_initial.sql: the same tables, columns and meanings.

-- Lifecycle state of each tool (one row per tool name).
CREATE TABLE tools (
    name            TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    active_version  TEXT,
    pending_version TEXT,
    grant_id        BIGINT,
    revision        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Every imported version of every manifest, canonical and as written.
CREATE TABLE tool_versions (
    tool          TEXT NOT NULL REFERENCES tools(name),
    version       TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    digest        TEXT NOT NULL,
    source_name   TEXT NOT NULL,
    source_text   TEXT NOT NULL,
    bundle_digest TEXT,
    install_info  TEXT,
    imported_at   BIGINT NOT NULL,
    PRIMARY KEY (tool, version)
);

-- What a person granted; the newest row a tool's grant_id points to is in force.
CREATE TABLE grants (
    id          BIGSERIAL PRIMARY KEY,
    tool        TEXT NOT NULL REFERENCES tools(name),
    version     TEXT NOT NULL,
    grant_json  TEXT NOT NULL,
    expires_at  BIGINT,
    granted_by  TEXT NOT NULL,
    granted_at  BIGINT NOT NULL
);

-- Each tool's persistent state volume.
CREATE TABLE volumes (
    tool        TEXT PRIMARY KEY REFERENCES tools(name),
    path        TEXT NOT NULL,
    quota_mb    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    purged_at   BIGINT
);

-- One row per call, written as `running` before the sandbox starts.
CREATE TABLE executions (
    id                TEXT PRIMARY KEY,
    tool              TEXT NOT NULL,
    version           TEXT NOT NULL,
    capability        TEXT NOT NULL,
    arguments         TEXT NOT NULL,
    status            TEXT NOT NULL,
    output            TEXT,
    stderr            TEXT,
    error             TEXT,
    exit_code         BIGINT,
    duration_ms       BIGINT,
    cpu_ms            BIGINT,
    peak_memory_bytes BIGINT,
    sandbox_id        TEXT,
    conversation_id   TEXT,
    turn_id           TEXT,
    actor             TEXT NOT NULL,
    started_at        BIGINT NOT NULL,
    finished_at       BIGINT
);
CREATE INDEX executions_by_start ON executions (started_at, id);
CREATE INDEX executions_by_tool ON executions (tool, started_at);
CREATE INDEX executions_by_status ON executions (status, started_at);

-- Requests to find a tool for a need no installed tool serves.
CREATE TABLE discovery_requests (
    id            TEXT PRIMARY KEY,
    description   TEXT NOT NULL,
    status        TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    proposal_tool TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Encrypted credentials (AEAD); the key is never in the database.
CREATE TABLE secrets (
    tool        TEXT NOT NULL,
    name        TEXT NOT NULL,
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tool, name)
);

-- The append-only, hash-chained audit trail.
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    tool       TEXT,
    actor      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

-- The chain's head: the last sequence number and hash. Every audited write locks this row
-- first, which serialises appends (and takes the write lock up front in SQLite).
CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- API access tokens; only a hash of each token is stored.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    label        TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
