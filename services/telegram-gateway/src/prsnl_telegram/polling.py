"""Long polling by one replica at a time, and the handling of one update.

The poller holds a PostgreSQL advisory lock on a dedicated connection; the
other replicas try again every few seconds and take over when the lock is
released (the holder stopped, or died and its connection closed). An update
is confirmed to Telegram (the next ``getUpdates`` offset) only after it was
handled — its captures durable — and every handled update id is recorded, so
a replica that takes over, or a webhook delivered twice, answers once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from typing import Any

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Gauge
from telegram import Update
from telegram.error import NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application

from prsnl_telegram import metrics
from prsnl_telegram.bot import OUTCOME
from prsnl_telegram.state import DB_ERRORS, State

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("prsnl_telegram")
POLLER = Gauge("prsnl_telegram_poller", "1 while this replica is the one polling Telegram")
UPDATE_KINDS = (
    "message",
    "edited_message",
    "channel_post",
    "callback_query",
    "inline_query",
    "my_chat_member",
)

AnyApp = Application[Any, Any, Any, Any, Any, Any]
# Raw getUpdates on purpose (see Poller._get_updates); the library suggests its parsed form.
warnings.filterwarnings("ignore", message=".*Bot.getUpdates.*", module=__name__)
ALLOWED = ["message", "edited_message", "channel_post", "callback_query"]


def kind_of(update: Update) -> str:
    for kind in UPDATE_KINDS:
        if getattr(update, kind, None) is not None:
            return kind
    return "other"


REMEMBER_UPDATES = 10_000


class UpdateHandler:
    """Handles each update once: the root span of whatever it captures.

    Handled ids are recorded in the database (for other replicas and restarts)
    and in memory (for when the database is away: the user was answered
    "try again" once, not on every poll).
    """

    def __init__(self, app: AnyApp, state: State) -> None:
        self.app = app
        self.state = state
        self.recent: dict[int, None] = {}

    async def __call__(self, update: Update) -> None:
        if update.update_id in self.recent or await self._handled_before(update.update_id):
            metrics.UPDATES.labels(kind_of(update), "duplicate").inc()
            return
        token = otel_context.attach(otel_context.Context())  # a new trace per update
        outcome = OUTCOME.set("ignored")
        try:
            with tracer.start_as_current_span(
                "telegram.update", attributes={"kind": kind_of(update)}
            ):
                await self.app.process_update(update)
            metrics.UPDATES.labels(kind_of(update), OUTCOME.get()).inc()
        finally:
            OUTCOME.reset(outcome)
            otel_context.detach(token)
        self._remember(update.update_id)
        try:
            await self.state.mark_update(update.update_id)
        except DB_ERRORS as exc:
            logger.warning("could not record update %s as handled: %s", update.update_id, exc)

    async def _handled_before(self, update_id: int) -> bool:
        try:
            return await self.state.update_handled(update_id)
        except DB_ERRORS:
            return False

    def _remember(self, update_id: int) -> None:
        self.recent[update_id] = None
        if len(self.recent) > REMEMBER_UPDATES:
            del self.recent[next(iter(self.recent))]


LOCK_KEY = "hashtextextended('prsnl-telegram-poller:' || $1::text, 0)"
CONNECT_TIMEOUT = 3.0


class PollerLock:
    """The advisory lock of the poller, held on a dedicated connection."""

    def __init__(self, dsn: str, bot_id: int) -> None:
        self.dsn = dsn
        self.bot_id = str(bot_id)
        self.connection: asyncpg.Connection | None = None

    async def try_take(self) -> bool:
        if self.connection is None or self.connection.is_closed():
            self.connection = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)
        return bool(
            await self.connection.fetchval(f"SELECT pg_try_advisory_lock({LOCK_KEY})", self.bot_id)
        )

    async def still_held(self) -> bool:
        """False only when another replica took the lock.

        A database that is away for everyone lets nobody take it, so the poller
        goes on polling and tells users to try again rather than going silent.
        """
        try:
            assert self.connection is not None
            await self.connection.fetchval("SELECT 1")
            return True
        except (AssertionError, *DB_ERRORS):
            await self.close()
        try:
            return await self.try_take()
        except DB_ERRORS:
            return True

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(*DB_ERRORS):
                await self.connection.close()
            self.connection = None


class Poller:
    def __init__(
        self, app: AnyApp, handler: UpdateHandler, dsn: str, timeout: int, retry: float
    ) -> None:
        self.app = app
        self.handler = handler
        self.state = handler.state
        self.lock = PollerLock(dsn, app.bot.id)
        self.timeout = timeout
        self.retry = retry

    async def run(self) -> None:
        """Forever: wait to become the poller, then poll until another replica is."""
        try:
            while True:
                try:
                    if await self.lock.try_take():
                        await self._lead()
                except DB_ERRORS as exc:
                    logger.warning("the poller's database is unreachable: %s", exc)
                finally:
                    POLLER.set(0)
                await asyncio.sleep(self.retry)
        finally:
            await self.lock.close()

    async def _lead(self) -> None:
        POLLER.set(1)
        logger.info("this replica polls Telegram now")
        await self.app.bot.delete_webhook()
        offset = await self.state.next_offset()
        while True:
            try:
                raw = await self._get_updates(offset)
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except (TimedOut, NetworkError) as exc:
                logger.info("getUpdates failed (%s); polling again", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for data in raw:
                await self._handle_raw(data)
                offset = int(data["update_id"]) + 1
            if not await self.lock.still_held():
                logger.warning("another replica polls now; standing by")
                return

    async def _get_updates(self, offset: int | None) -> list[dict[str, Any]]:
        """Raw updates: one the library cannot read must not stop the others (it is skipped)."""
        arguments: dict[str, Any] = {"timeout": self.timeout, "allowed_updates": ALLOWED}
        if offset is not None:
            arguments["offset"] = offset
        result = await self.app.bot.do_api_request(
            "getUpdates", api_kwargs=arguments, read_timeout=self.timeout + 10
        )
        return [u for u in result if isinstance(u, dict) and isinstance(u.get("update_id"), int)]

    async def _handle_raw(self, data: dict[str, Any]) -> None:
        try:
            update = Update.de_json(data, self.app.bot)
        except Exception as exc:  # untrusted input: a malformed update is counted and skipped
            metrics.UPDATES.labels("unreadable", "ignored").inc()
            logger.warning("skipped update %s: %s", data["update_id"], type(exc).__name__)
            return
        try:
            await self.handler(update)
        except TelegramError:
            logger.exception("update %s could not be answered", update.update_id)


def _seconds(value: Any) -> float:
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)
