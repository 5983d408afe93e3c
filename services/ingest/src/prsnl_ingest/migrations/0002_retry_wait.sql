-- An item waiting for a retry says so: the stage, which attempt failed, of how many,
-- when the next starts and the last error. Cleared when the item moves on.
ALTER TABLE items ADD COLUMN retry jsonb;
