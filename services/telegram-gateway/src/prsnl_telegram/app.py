"""Wiring of the Telegram gateway: its database state, the API client, the bot, the
subscribers of its own queues, and polling (or the webhook)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, Defaults

from prsnl_common.broker import Topology
from prsnl_common.consumer import subscribe_stage
from prsnl_common.db import create_pool, ensure_database, migrate
from prsnl_common.events import (
    ItemFailed,
    VideoDownloadProgress,
    VideoTranscoded,
    VideoTranscodeProgress,
)
from prsnl_common.settings import CommonSettings
from prsnl_common.store import open_store
from prsnl_common.tasks import cancel_and_wait
from prsnl_telegram.answers import Answers
from prsnl_telegram.api import Api
from prsnl_telegram.bot import Bot
from prsnl_telegram.files import Files
from prsnl_telegram.polling import Poller, UpdateHandler
from prsnl_telegram.replies import Replies
from prsnl_telegram.settings import TelegramSettings
from prsnl_telegram.state import MIGRATIONS, State
from prsnl_telegram.webhook import serve_webhook

SERVICE = "telegram-gateway"
PRUNE_SECONDS = 3600.0
logger = logging.getLogger(__name__)
AnyApp = Application[Any, Any, Any, Any, Any, Any]


def build_application(settings: TelegramSettings) -> AnyApp:
    """python-telegram-bot without its updater: we poll (or take webhooks) ourselves, so an
    update is confirmed only after it was handled."""
    return (
        ApplicationBuilder()
        .token(settings.bot_token.get_secret_value())
        .base_url(settings.bot_api_base)
        .base_file_url(settings.bot_file_base)
        .local_mode(settings.local_mode)
        .rate_limiter(AIORateLimiter(max_retries=3))  # flood limits; honours RetryAfter
        .media_write_timeout(300.0)
        .defaults(Defaults(do_quote=True))  # each answer quotes the message it answers
        .updater(None)
        .build()
    )


def make_setup(settings: TelegramSettings, common: CommonSettings) -> Any:
    @contextlib.asynccontextmanager
    async def setup(broker: RabbitBroker, topology: Topology) -> AsyncIterator[None]:
        await ensure_database(common.database_url)
        await migrate(common.database_url, MIGRATIONS)
        pool = await create_pool(common.database_url, max_size=5)
        api = Api(settings.gateway_url)
        application = build_application(settings)
        await application.initialize()  # getMe: a wrong token fails here, at start
        state = State(pool, application.bot.id)
        answers = Answers(application.bot, state, open_store(common), settings.upload_limit_bytes)
        files = Files(application.bot, api, settings.download_limit_bytes, settings.local_mode)
        Bot(settings, api, state, answers, files).install(application)
        replies = Replies(
            state, api, answers, settings.allowed_users, settings.edit_interval_seconds
        )
        subscribe_replies(broker, topology, replies)
        handler = UpdateHandler(application, state)
        tasks = [asyncio.create_task(_prune_forever(state), name="telegram-prune")]
        if settings.mode == "webhook":
            tasks.append(asyncio.create_task(serve_webhook(settings, application, handler)))
        else:
            poller = Poller(
                application,
                handler,
                common.database_url,
                settings.poll_timeout,
                settings.leader_retry_seconds,
            )
            tasks.append(asyncio.create_task(poller.run(), name="telegram-poller"))
        try:
            yield
        finally:
            await cancel_and_wait(*tasks)
            await application.shutdown()
            await api.close()
            await pool.close()

    return setup


def subscribe_replies(broker: RabbitBroker, topology: Topology, replies: Replies) -> None:
    """Durable answers under the shared failure policy; progress is best effort (ack always)."""

    # A reply that fails never fails the item: report_failures=False, and the handlers
    # give up (acknowledge) on their last attempt rather than dead-letter.
    subscribe_stage(
        broker,
        topology,
        service=SERVICE,
        stage="catalog",
        event_type=VideoTranscoded,
        handler=replies.on_video_transcoded,
        report_failures=False,
    )
    subscribe_stage(
        broker,
        topology,
        service=SERVICE,
        stage="catalog",
        event_type=ItemFailed,
        handler=replies.on_item_failed,
        report_failures=False,
    )

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoDownloadProgress),
        topology.events,
        ack_policy=AckPolicy.ACK,
    )
    async def on_video_download_progress(event: VideoDownloadProgress) -> None:
        await _best_effort(replies.on_progress(event))

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoTranscodeProgress),
        topology.events,
        ack_policy=AckPolicy.ACK,
    )
    async def on_video_transcode_progress(event: VideoTranscodeProgress) -> None:
        await _best_effort(replies.on_progress(event))


async def _best_effort(work: Any) -> None:
    try:
        await work
    except Exception as exc:  # progress may be dropped; the final answer is durable
        logger.info("progress edit skipped: %s", exc)


async def _prune_forever(state: State) -> None:
    while True:
        with contextlib.suppress(Exception):
            await state.prune()
        await asyncio.sleep(PRUNE_SECONDS)
