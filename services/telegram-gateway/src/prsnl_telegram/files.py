"""Videos sent as files: fetched from the Bot API (getFile) and streamed to the API's upload.

The upload makes the item durable exactly like a link (the original in the
media store and the item with its ``video.downloaded`` in one transaction),
then the pipeline runs as for a download. A file over the Bot API's download
limit (20 MB through Telegram's servers) is answered with the limit, never
silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from telegram import Bot, Message
from telegram.error import BadRequest

from prsnl_telegram import texts
from prsnl_telegram.api import Api, Captured, Unavailable

CHUNK = 256 * 1024
FILE_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class Files:
    def __init__(self, bot: Bot, api: Api, limit: int | None, local_mode: bool) -> None:
        self.bot = bot
        self.api = api
        self.limit = limit
        self.local_mode = local_mode

    async def capture(self, key: str, message: Message) -> Captured | None:
        """The upload's answer; None when the file was refused here (the user was told)."""
        media = message.video or message.animation or message.video_note or message.document
        if media is None:
            return None
        if self.limit is not None and (media.file_size or 0) > self.limit:
            await message.reply_text(texts.file_too_big(media.file_size, self.limit))
            return None
        try:
            tg_file = await self.bot.get_file(media.file_id)
        except BadRequest:  # "file is too big" when the message did not say its size
            await message.reply_text(texts.file_too_big(media.file_size, self.limit or 0))
            return None
        size = tg_file.file_size or media.file_size
        if not tg_file.file_path or not size:
            raise Unavailable("the Bot API gave no file path or size")
        mime = getattr(media, "mime_type", None) or "video/mp4"
        name = getattr(media, "file_name", None) or f"{media.file_unique_id}.mp4"
        return await self.api.upload(key, self._bytes(tg_file.file_path), size, mime, name)

    async def _bytes(self, file_path: str) -> AsyncIterator[bytes]:
        if self.local_mode and Path(file_path).is_absolute():
            # A local Bot API server keeps the file on its own disk, shared with us.
            local = await asyncio.to_thread(Path(file_path).open, "rb")
            try:
                while chunk := await asyncio.to_thread(local.read, CHUNK):
                    yield chunk
            finally:
                local.close()
            return
        async with (
            httpx.AsyncClient(timeout=FILE_TIMEOUT) as client,
            client.stream("GET", file_path) as response,
        ):
            if response.status_code != 200:
                raise Unavailable(f"the Bot API answered {response.status_code} for the file")
            async for chunk in response.aiter_bytes(CHUNK):
                yield chunk
