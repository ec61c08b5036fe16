-- Sentence embeddings of capability texts, by model and SHA-256 of the text, so that a restart
-- (or a second index build) embeds nothing twice. A cache: nothing audited refers to it, and
-- deleting rows only costs time.
CREATE TABLE embedding_cache (
    model       TEXT NOT NULL,
    text_hash   TEXT NOT NULL,
    -- Little-endian f32 components.
    vector      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (model, text_hash)
);
