-- One-time sign-in links for the dashboard (`slovo dashboard`): only a SHA-256 of each link's
-- secret is kept; a link signs in once, before it expires.
CREATE TABLE dashboard_signin_links (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
