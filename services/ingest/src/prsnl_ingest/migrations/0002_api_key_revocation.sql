-- API keys can be revoked (kept for the record) and say when they were last used.
ALTER TABLE api_keys
    ADD COLUMN revoked_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;
