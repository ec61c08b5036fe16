-- Signed-in dashboard sessions, so that a restart of the server does not sign everyone out.
-- Only a SHA-256 of each session id (the cookie's value) is kept: the table yields no cookie.
-- `principal` is what the person signed in with (`token:<id>` or `link:<id>`).
CREATE TABLE dashboard_sessions (
    id_hash    TEXT PRIMARY KEY,
    principal  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);
