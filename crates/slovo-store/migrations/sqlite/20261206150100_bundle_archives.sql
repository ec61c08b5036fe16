-- Installed bundles as tarballs, keyed by their content digest, so that every instance sharing
-- this database can install a tool imported through any of them. The receiving instance stages
-- the archive like an imported tarball and accepts it only if its own digest matches.
CREATE TABLE bundle_archives (
    digest     TEXT PRIMARY KEY,
    archive    BLOB NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
