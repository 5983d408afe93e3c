-- Every change of an item row, however it is made, is announced on prsnl_item_changes
-- (payload: the item id; '' after a TRUNCATE): the gateways' item caches drop the row.
CREATE FUNCTION prsnl_item_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('prsnl_item_changes', '');
    ELSE
        PERFORM pg_notify('prsnl_item_changes', OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER items_changed AFTER UPDATE OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION prsnl_item_changed();
CREATE TRIGGER items_truncated AFTER TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION prsnl_item_changed();
