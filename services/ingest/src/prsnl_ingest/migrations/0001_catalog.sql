-- The catalog: owners, their API keys, their items, and the transactional outbox.
CREATE TABLE owners (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_hash    bytea PRIMARY KEY,          -- sha256 of the key; the key itself is never stored
    owner_id    uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
    id                 uuid PRIMARY KEY,
    owner_id           uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    url                text NOT NULL,
    normalized_url     text NOT NULL,
    platform           text NOT NULL,
    platform_video_id  text,
    source             text NOT NULL,
    options            jsonb NOT NULL DEFAULT '{}',
    reply_to           jsonb,
    status             text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'downloading', 'downloaded', 'processing', 'ready', 'failed')),
    run                integer NOT NULL DEFAULT 1,
    progress           jsonb,
    title              text,
    uploader           text,
    description        text,
    webpage_url        text,
    extractor          text,
    upload_date        text,
    duration           double precision,
    metadata           jsonb,
    action             text,
    profile            text,
    requested_profile  text,
    original_key       text,
    original_size      bigint,
    video_key          text,
    thumbnail_keys     jsonb,
    error_code         text,
    error_message      text,
    error_stage        text,
    error_attempts     integer,
    error_retryable    boolean,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    ready_at           timestamptz,
    search             tsvector GENERATED ALWAYS AS (
        to_tsvector('simple',
            coalesce(title, '') || ' ' || coalesce(uploader, '') || ' ' ||
            coalesce(description, '') || ' ' || normalized_url)
    ) STORED
);

CREATE UNIQUE INDEX items_owner_normalized_url ON items (owner_id, normalized_url);
CREATE UNIQUE INDEX items_owner_platform_video ON items (owner_id, platform, platform_video_id)
    WHERE platform_video_id IS NOT NULL;
CREATE INDEX items_owner_created ON items (owner_id, created_at DESC, id DESC);
CREATE INDEX items_owner_status_created ON items (owner_id, status, created_at DESC, id DESC);
CREATE INDEX items_search ON items USING gin (search);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    routing_key  text NOT NULL,
    payload      jsonb NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
