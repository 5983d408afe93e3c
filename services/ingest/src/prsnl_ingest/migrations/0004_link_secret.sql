-- The secret that signs media links, made once so that every gateway replica shares it
-- (PRSNL_INGEST_LINK_SECRET overrides it, e.g. to rotate it).
CREATE TABLE link_secret (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret      bytea NOT NULL CHECK (length(secret) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
