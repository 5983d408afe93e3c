"""The bot's own tables: reply targets, final answers, file ids, handled updates.

Every method is one short statement or transaction; they make the bot's
answers idempotent across event redeliveries, restarts and replicas.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"
IN_FLIGHT_SECONDS = 30  # a capture call never takes this long (the API's own timeouts are 15 s)
CLAIM_SECONDS = 600  # an upload in progress keeps its claim this long
KEEP_UPDATES_DAYS = 2  # Telegram forgets unconfirmed updates after 24 h
# What an unreachable or stalled database raises.
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


@dataclass(frozen=True)
class Reply:
    item_id: uuid.UUID
    chat_id: int
    user_id: int
    source_message_id: int
    status_message_id: int | None


class State:
    def __init__(self, pool: asyncpg.Pool, bot_id: int) -> None:
        self.pool = pool
        self.bot_id = bot_id  # update ids are numbered per bot

    # -- captures in flight ---------------------------------------------------------------

    async def capture_started(self) -> int:
        value = await self.pool.fetchval(
            "INSERT INTO telegram_captures_in_flight DEFAULT VALUES RETURNING id"
        )
        return int(value)

    async def capture_finished(self, marker: int) -> None:
        await self.pool.execute("DELETE FROM telegram_captures_in_flight WHERE id = $1", marker)

    async def captures_in_flight(self) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM telegram_captures_in_flight WHERE started_at > "
                "now() - make_interval(secs => $1))",
                IN_FLIGHT_SECONDS,
            )
        )

    # -- replies --------------------------------------------------------------------------

    async def remember_reply(self, reply: Reply) -> None:
        """Answers of the item go to this chat's latest request (a new ask moves them)."""
        await self.pool.execute(
            "INSERT INTO telegram_replies (item_id, chat_id, user_id, source_message_id, "
            "status_message_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (item_id, chat_id) "
            "DO UPDATE SET user_id = EXCLUDED.user_id, source_message_id = "
            "EXCLUDED.source_message_id, status_message_id = EXCLUDED.status_message_id",
            reply.item_id,
            reply.chat_id,
            reply.user_id,
            reply.source_message_id,
            reply.status_message_id,
        )

    async def replies_for(self, item_id: uuid.UUID) -> list[Reply]:
        rows = await self.pool.fetch(
            "SELECT item_id, chat_id, user_id, source_message_id, status_message_id "
            "FROM telegram_replies WHERE item_id = $1",
            item_id,
        )
        return [Reply(**dict(row)) for row in rows]

    async def forget_item(self, item_id: uuid.UUID) -> None:
        await self.pool.execute("DELETE FROM telegram_replies WHERE item_id = $1", item_id)

    # -- final answers --------------------------------------------------------------------

    async def answered(self, reply: Reply, run: int) -> bool:
        """True once a final answer of this run (or a later one) is being sent or was sent."""
        return bool(
            await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM telegram_deliveries WHERE item_id = $1 "
                "AND chat_id = $2 AND run >= $3)",
                reply.item_id,
                reply.chat_id,
                run,
            )
        )

    async def claim_delivery(self, reply: Reply, run: int, outcome: str) -> bool:
        """True when this process is to send the answer: not sent yet and nobody sending it."""
        claimed = await self.pool.fetchval(
            "INSERT INTO telegram_deliveries (item_id, chat_id, run, outcome, claimed_until) "
            "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) "
            "ON CONFLICT (item_id, chat_id, run, outcome) DO UPDATE "
            "SET claimed_until = EXCLUDED.claimed_until "
            "WHERE telegram_deliveries.done_at IS NULL "
            "AND telegram_deliveries.claimed_until < now() RETURNING true",
            reply.item_id,
            reply.chat_id,
            run,
            outcome,
            CLAIM_SECONDS,
        )
        return bool(claimed)

    async def delivery_done(self, reply: Reply, run: int, outcome: str) -> None:
        await self.pool.execute(
            "UPDATE telegram_deliveries SET done_at = now() WHERE item_id = $1 AND chat_id = $2 "
            "AND run = $3 AND outcome = $4",
            reply.item_id,
            reply.chat_id,
            run,
            outcome,
        )

    async def release_delivery(self, reply: Reply, run: int, outcome: str) -> None:
        """The send failed: the next delivery of the event may try again at once."""
        await self.pool.execute(
            "DELETE FROM telegram_deliveries WHERE item_id = $1 AND chat_id = $2 AND run = $3 "
            "AND outcome = $4 AND done_at IS NULL",
            reply.item_id,
            reply.chat_id,
            run,
            outcome,
        )

    # -- file ids -------------------------------------------------------------------------

    async def file_id(self, video_key: str) -> str | None:
        value = await self.pool.fetchval(
            "SELECT file_id FROM telegram_files WHERE video_key = $1", video_key
        )
        return str(value) if value else None

    async def remember_file(self, video_key: str, file_id: str, file_unique_id: str) -> None:
        await self.pool.execute(
            "INSERT INTO telegram_files (video_key, file_id, file_unique_id) VALUES ($1, $2, $3) "
            "ON CONFLICT (video_key) DO UPDATE SET file_id = EXCLUDED.file_id, "
            "file_unique_id = EXCLUDED.file_unique_id, stored_at = now()",
            video_key,
            file_id,
            file_unique_id,
        )

    async def forget_file(self, video_key: str) -> None:
        await self.pool.execute("DELETE FROM telegram_files WHERE video_key = $1", video_key)

    # -- updates --------------------------------------------------------------------------

    async def update_handled(self, update_id: int) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM telegram_updates WHERE bot_id = $1 "
                "AND update_id = $2)",
                self.bot_id,
                update_id,
            )
        )

    async def mark_update(self, update_id: int) -> None:
        await self.pool.execute(
            "INSERT INTO telegram_updates (bot_id, update_id) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            self.bot_id,
            update_id,
        )

    async def next_offset(self) -> int | None:
        """Where polling goes on: after the newest handled update (None: Telegram decides)."""
        value = await self.pool.fetchval(
            "SELECT max(update_id) FROM telegram_updates WHERE bot_id = $1", self.bot_id
        )
        return int(value) + 1 if value is not None else None

    async def prune(self) -> None:
        await self.pool.execute(
            "DELETE FROM telegram_updates WHERE bot_id = $2 AND processed_at < now() - "
            "make_interval(days => $1) AND update_id < "
            "(SELECT max(update_id) FROM telegram_updates WHERE bot_id = $2)",
            KEEP_UPDATES_DAYS,
            self.bot_id,
        )
        await self.pool.execute(
            "DELETE FROM telegram_captures_in_flight WHERE started_at < now() - "
            "make_interval(secs => $1)",
            IN_FLIGHT_SECONDS,
        )
