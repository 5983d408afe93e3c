-- API keys have a role: an owner key sees its own usage, an admin key every owner's.
ALTER TABLE api_keys
    ADD COLUMN role text NOT NULL DEFAULT 'owner' CHECK (role IN ('owner', 'admin'));

-- Per-owner quota overrides (prsnl-ingest set-quota); a NULL limit falls back to the
-- default of the settings, 0 means unlimited.
CREATE TABLE owner_quotas (
    owner_id              uuid PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    max_bytes             bigint CHECK (max_bytes >= 0),
    max_captures_per_day  integer CHECK (max_captures_per_day >= 0),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Optional retention per owner (prsnl-ingest retention): remove finished items older than
-- max_age_days, and/or the oldest finished items while the owner stores over max_bytes.
CREATE TABLE owner_retention (
    owner_id      uuid PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    max_age_days  integer CHECK (max_age_days > 0),
    max_bytes     bigint CHECK (max_bytes > 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
