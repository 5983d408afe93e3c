"""Answers driven by pipeline events from the gateway's own durable queues.

* ``video.transcoded`` → the video (or its link) to every chat that asked;
* ``item.failed`` → the reason, the code and a Retry button;
* progress → an edit of the "Saving…" message, at most one per interval.

An event delivered twice sends one answer (:meth:`State.claim_delivery`); an
answer Telegram could not take now is retried with the shared back-off; one
it refuses for good (the user blocked the bot) is dropped. An event for an
item the bot has not recorded yet while a capture is in flight waits for a
retry; otherwise it belongs to another front end and is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from telegram.error import BadRequest, Forbidden, TelegramError

from prsnl_common.consumer import Job
from prsnl_common.errors import TransientError
from prsnl_common.events import (
    ItemFailed,
    VideoDownloadProgress,
    VideoTranscoded,
    VideoTranscodeProgress,
)
from prsnl_common.throttle import Throttle
from prsnl_telegram import metrics, texts
from prsnl_telegram.answers import Answers
from prsnl_telegram.api import Api, ApiError, Unavailable
from prsnl_telegram.state import Reply, State

logger = logging.getLogger(__name__)
CATALOG_WAITS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # then the answer goes as the item is
Send = Callable[[Reply], Awaitable[None]]


class Replies:
    def __init__(
        self,
        state: State,
        api: Api,
        answers: Answers,
        keys: dict[int, str],
        edit_interval: float,
    ) -> None:
        self.state = state
        self.api = api
        self.answers = answers
        self.keys = keys
        self.throttle = Throttle(edit_interval)

    async def on_video_transcoded(self, event: VideoTranscoded, job: Job[VideoTranscoded]) -> None:
        if event.profile is not None:
            return  # a re-transcode asked for elsewhere; the chat has its video

        async def send(reply: Reply) -> None:
            item = await self._recorded(self.keys[reply.user_id], event.item_id)
            await self.answers.ready(reply.chat_id, reply.source_message_id, item)
            if reply.status_message_id:
                await self.answers.edit(
                    reply.chat_id, reply.status_message_id, f"Ready \u2705\n{item['url']}"
                )

        await self._deliver(event.item_id, event.run, "ready", send, job)

    async def on_item_failed(self, event: ItemFailed, job: Job[ItemFailed]) -> None:
        if event.profile is not None:
            return

        async def send(reply: Reply) -> None:
            error = {"code": event.error_code, "message": event.message}
            text = texts.failed({"url": "it", "error": error})
            await self.answers.failed(
                reply.chat_id, reply.source_message_id, event.item_id, text, event.error_code
            )
            if reply.status_message_id:
                await self.answers.edit(
                    reply.chat_id, reply.status_message_id, f"Failed ({event.error_code})"
                )

        await self._deliver(event.item_id, event.run, "failed", send, job)

    async def on_progress(self, event: VideoDownloadProgress | VideoTranscodeProgress) -> None:
        if not self.throttle.due(event.item_id):
            metrics.EDITS_THROTTLED.inc()
            return
        if isinstance(event, VideoDownloadProgress):
            total = event.total_bytes
            fraction = event.downloaded_bytes / total if total else None
            text = texts.progress(
                "Downloading", fraction, event.downloaded_bytes, total, event.speed
            )
        else:
            if event.profile is not None:
                return
            text = texts.progress("Processing", event.fraction, None, None, None)
        for reply in await self.state.replies_for(event.item_id):
            # A late progress event must not overwrite the final "Ready" or "Failed" edit.
            if reply.status_message_id and not await self.state.answered(reply, event.run):
                await self.answers.edit(reply.chat_id, reply.status_message_id, text)

    async def _recorded(self, key: str, item_id: uuid.UUID) -> dict[str, Any]:
        """The item once the catalog has recorded its video: the gateway applies the same
        event in parallel, and until it has, the item has no metadata nor thumbnails."""
        item = await self.api.item(key, item_id)
        for pause in CATALOG_WAITS:
            if item["status"] == "ready":
                break
            await asyncio.sleep(pause)
            item = await self.api.item(key, item_id)
        return item

    async def _deliver(
        self, item_id: uuid.UUID, run: int, outcome: str, send: Send, job: Job[Any]
    ) -> None:
        """Each chat's answer once; a transient failure retries the event, never dead-letters
        it (a dead-lettered message would fail the item in the catalog)."""
        replies = await self.state.replies_for(item_id)
        if not replies:
            if not job.last_attempt and await self.state.captures_in_flight():
                raise TransientError("reply_not_recorded", "a capture is still being recorded")
            return
        for reply in replies:
            if reply.user_id not in self.keys:
                continue  # not a user of this bot's settings: never claimed, never dropped
            if not await self.state.claim_delivery(reply, run, outcome):
                continue
            try:
                await send(reply)
            except (Forbidden, BadRequest) as exc:
                logger.warning("Telegram refused the %s answer for good: %s", outcome, exc)
            except (TelegramError, Unavailable) as exc:
                if not job.last_attempt:
                    await self.state.release_delivery(reply, run, outcome)
                    raise TransientError("reply_failed", f"{type(exc).__name__}: {exc}") from exc
                logger.error("giving up on the %s answer: %s", outcome, exc)
            except ApiError as exc:
                logger.warning("the API refused the item for the %s answer: %s", outcome, exc)
            await self.state.delivery_done(reply, run, outcome)
