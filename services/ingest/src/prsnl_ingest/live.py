"""Live item updates for Server-Sent Events, fed by PostgreSQL NOTIFY.

Any gateway replica may apply a pipeline event while the browser listens on
another, so changes travel through the database's ``prsnl_items`` channel:
every replica LISTENs once and fans the notifications out to its local
listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from prsnl_ingest.catalog import ITEMS_CHANNEL

logger = logging.getLogger(__name__)
QUEUE_SIZE = 256


class LiveHub:
    """Fans item notifications out to the listeners of this process."""

    def __init__(self) -> None:
        self._listeners: dict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._connection: asyncpg.Connection | None = None

    async def start(self, dsn: str) -> None:
        self._connection = await asyncpg.connect(dsn)
        await self._connection.add_listener(ITEMS_CHANNEL, self._on_notify)

    async def stop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            message = json.loads(str(payload))
            item_id = uuid.UUID(message["item_id"])
        except (ValueError, KeyError):
            logger.warning("ignoring malformed item notification")
            return
        for queue in self._listeners.get(item_id, ()):
            if queue.full():
                # A slow reader loses old progress, never the newest state.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    @contextlib.asynccontextmanager
    async def listen(self, item_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._listeners[item_id].add(queue)
        try:
            yield queue
        finally:
            self._listeners[item_id].discard(queue)
            if not self._listeners[item_id]:
                del self._listeners[item_id]
