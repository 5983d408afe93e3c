"""How the bot answers: the finished video (by file_id when Telegram has it), the
too-big link, the failure with its code, progress edits. Shared by the event
handlers and the commands, so a video is sent one way only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, TelegramError

from prsnl_common.store import MediaStore, thumbnail_key, video_key
from prsnl_telegram import metrics, texts
from prsnl_telegram.state import State

logger = logging.getLogger(__name__)
NO_RETRY = frozenset({"too_large", "blocked_address", "unsupported_scheme"})
TELEGRAM_THUMB_WIDTH = 320  # Telegram takes thumbnails up to 320 px wide


def retry_button(item_id: uuid.UUID | str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Retry", callback_data=f"retry:{item_id}")]])


class Answers:
    def __init__(self, bot: Bot, state: State, store: MediaStore, upload_limit: int) -> None:
        self.bot = bot
        self.state = state
        self.store = store
        self.upload_limit = upload_limit

    async def ready(self, chat_id: int, reply_to: int | None, item: dict[str, Any]) -> None:
        """The video into the chat: by file_id if known, uploaded if it fits, else the link."""
        key = video_key(item["id"], item.get("profile"))
        known = await self.state.file_id(key)
        if known is not None:
            try:
                await self._send_video(chat_id, reply_to, item, known)
                metrics.REPLIES.labels("video_by_file_id").inc()
                return
            except BadRequest:
                logger.info("Telegram no longer knows the file id of %s; uploading", key)
                await self.state.forget_file(key)
        stored = await asyncio.to_thread(self.store.stat, key)
        link = (item.get("links") or {}).get("video")
        if stored is None or stored.size > self.upload_limit:
            await self.bot.send_message(
                chat_id,
                texts.too_big(item, link or "(no link)", self.upload_limit),
                reply_to_message_id=reply_to,
                allow_sending_without_reply=True,
            )
            metrics.REPLIES.labels("link").inc()
            return
        message = await self._upload(chat_id, reply_to, item, key)
        metrics.REPLIES.labels("video").inc()
        metrics.BYTES_UPLOADED.inc(stored.size)
        if message.video is not None:
            await self.state.remember_file(key, message.video.file_id, message.video.file_unique_id)

    async def failed(
        self, chat_id: int, reply_to: int | None, item_id: uuid.UUID, text: str, code: str
    ) -> None:
        markup = None if code in NO_RETRY else retry_button(item_id)
        await self.bot.send_message(
            chat_id,
            text,
            reply_to_message_id=reply_to,
            allow_sending_without_reply=True,
            reply_markup=markup,
        )
        metrics.REPLIES.labels("failed").inc()

    async def edit(self, chat_id: int, message_id: int, text: str) -> None:
        """A status edit is best effort: a refused or failed edit never breaks anything."""
        try:
            await self.bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)
        except TelegramError as exc:
            metrics.EDITS_FAILED.inc()
            logger.info("edit refused: %s", exc)

    async def _send_video(
        self,
        chat_id: int,
        reply_to: int | None,
        item: dict[str, Any],
        video: Any,
        thumbnail: Any = None,
    ) -> Message:
        with contextlib.ExitStack() as files:
            thumb = files.enter_context(thumbnail.open("rb")) if thumbnail is not None else None
            return await self.bot.send_video(
                chat_id,
                video,
                duration=round(item["duration"]) if item.get("duration") else None,
                width=item.get("width"),
                height=item.get("height"),
                caption=texts.caption(item),
                supports_streaming=True,
                thumbnail=thumb,
                reply_to_message_id=reply_to,
                allow_sending_without_reply=True,
                filename=f"{item['id']}.mp4",
            )

    async def _upload(
        self, chat_id: int, reply_to: int | None, item: dict[str, Any], key: str
    ) -> Message:
        """Send the file of ``key`` (copied to scratch first from an object store)."""
        job = f"telegram-{uuid.uuid4().hex}"
        scratch = await asyncio.to_thread(self.store.scratch, job)
        try:
            path = await asyncio.to_thread(self.store.local_file, key, scratch)
            thumb = await asyncio.to_thread(self._thumbnail, item, scratch)
            with path.open("rb") as video:
                return await self._send_video(chat_id, reply_to, item, video, thumb)
        finally:
            await asyncio.to_thread(self.store.discard_scratch, job)

    def _thumbnail(self, item: dict[str, Any], scratch: Path) -> Path | None:
        widths = sorted(int(w) for w in (item.get("links") or {}).get("thumbnails", {}))
        fitting = [w for w in widths if w <= TELEGRAM_THUMB_WIDTH] or widths[:1]
        if not fitting:
            return None
        key = thumbnail_key(item["id"], fitting[-1], item.get("profile"))
        try:
            return self.store.local_file(key, scratch) if self.store.exists(key) else None
        except FileNotFoundError:  # deleted between the look and the copy
            return None
