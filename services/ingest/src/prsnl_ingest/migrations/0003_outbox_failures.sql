-- The outbox relay records why a row could not be published; a row that keeps
-- failing is quarantined (kept, with its reason) instead of blocking the rows after it.
ALTER TABLE outbox
    ADD COLUMN attempts       integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error     text,
    ADD COLUMN quarantined_at timestamptz;

CREATE INDEX outbox_pending ON outbox (id) WHERE quarantined_at IS NULL;
