-- The Telegram gateway's own state (it never writes the catalog). File names carry the
-- service's name: the migrations runner records applied files by name in one table.

-- Where each item's answers go: the chat, the user's message and the bot's status message.
CREATE TABLE telegram_replies (
    item_id            uuid NOT NULL,
    chat_id            bigint NOT NULL,
    user_id            bigint NOT NULL,
    source_message_id  bigint NOT NULL,
    status_message_id  bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, chat_id)
);

-- Captures between "sent to the API" and "reply recorded": an event for an item the bot
-- does not know yet waits while one is in flight instead of being taken for another's.
CREATE TABLE telegram_captures_in_flight (
    id          bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now()
);

-- One final answer per item, chat, run and outcome, whatever the event deliveries.
CREATE TABLE telegram_deliveries (
    item_id        uuid NOT NULL,
    chat_id        bigint NOT NULL,
    run            integer NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('ready', 'failed')),
    claimed_until  timestamptz NOT NULL,
    done_at        timestamptz,
    PRIMARY KEY (item_id, chat_id, run, outcome)
);

-- Telegram's file_id of each uploaded video: the same video again is sent without uploading.
CREATE TABLE telegram_files (
    video_key       text PRIMARY KEY,
    file_id         text NOT NULL,
    file_unique_id  text NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now()
);

-- Updates handled (so a replica taking over, or a redelivered webhook, answers once), and
-- where polling goes on.
CREATE TABLE telegram_updates (
    bot_id        bigint NOT NULL,
    update_id     bigint NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, update_id)
);
