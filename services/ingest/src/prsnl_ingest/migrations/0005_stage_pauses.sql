-- Worker replicas whose stage is paused for low disk, as they announce it (StageState);
-- shown on the items that wait for that stage. A row not announced again fades out.
CREATE TABLE stage_pauses (
    service         text NOT NULL,
    instance        text NOT NULL,
    free_bytes      bigint NOT NULL,
    min_free_bytes  bigint NOT NULL,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, instance)
);
