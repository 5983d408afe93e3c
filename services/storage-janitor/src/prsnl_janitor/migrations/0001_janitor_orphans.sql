-- The janitor's own table: files its scan found unreferenced, announced as file.orphaned
-- and removed after delete_after if still unreferenced and unchanged (same size and mtime).
CREATE TABLE janitor_orphans (
    storage_key   text PRIMARY KEY,
    item_id       uuid NOT NULL,
    size          bigint NOT NULL,
    mtime         double precision NOT NULL,
    reason        text NOT NULL,
    announced_at  timestamptz NOT NULL DEFAULT now(),
    delete_after  timestamptz NOT NULL
);

CREATE INDEX janitor_orphans_due ON janitor_orphans (delete_after);
