"""Live item updates for Server-Sent Events, fed by PostgreSQL NOTIFY.

Any gateway replica may apply a pipeline event while the browser listens on
another, so changes travel through the database's ``prsnl_items`` channel:
every replica LISTENs once and fans the notifications out to its local
listeners, of one item or of all the items of one owner. The same connection
carries other replica-wide notices (revoked API keys) to the callbacks the
gateway registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from prsnl_ingest.catalog import ITEMS_CHANNEL

logger = logging.getLogger(__name__)
QUEUE_SIZE = 256


class LiveHub:
    """Fans item notifications out to the listeners of this process."""

    def __init__(
        self,
        channels: dict[str, Callable[[str], None]] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        # Other channels that ride on the same LISTEN connection (key revocations);
        # each callback gets the payload, and "" after a reconnect (something may
        # have been missed meanwhile). ``on_lost`` hears when the connection drops.
        self._channels = channels or {}
        self._on_lost = on_lost
        # Listeners of one item, and of every item of an owner, by that id.
        self._listeners: dict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._owners: dict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._streams: dict[uuid.UUID, int] = defaultdict(int)
        self._connection: asyncpg.Connection | None = None
        self._dsn = ""
        self._stopping = False
        self._reconnect: asyncio.Task[None] | None = None

    async def start(self, dsn: str) -> None:
        self._dsn = dsn
        await self._connect()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        await connection.add_listener(ITEMS_CHANNEL, self._on_notify)
        for channel, callback in self._channels.items():
            await connection.add_listener(channel, _payload_to(callback))
            callback("")
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection

    def _on_terminated(self, _connection: object) -> None:
        # The database restarted or the connection dropped: listen again.
        if self._on_lost is not None:
            self._on_lost()
        if not self._stopping:
            self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_forever())

    async def _reconnect_forever(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                await self._connect()
                logger.info("live updates listening again")
                return
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("live updates: reconnect failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            message = json.loads(str(payload))
            item_id = uuid.UUID(message["item_id"])
            owner_id = uuid.UUID(message["owner_id"]) if message.get("owner_id") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("ignoring malformed item notification")
            return
        queues = [*self._listeners.get(item_id, ())]
        if owner_id is not None:
            queues += self._owners.get(owner_id, ())
        for queue in queues:
            if queue.full():
                # A slow reader loses old progress, never the newest state.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(dict(message))  # each reader its own copy to take apart

    def streams_of(self, owner_id: uuid.UUID) -> int:
        """How many streams ``owner_id`` has open on this replica (for the per-owner cap)."""
        return self._streams.get(owner_id, 0)

    @contextlib.asynccontextmanager
    async def listen(
        self, item_id: uuid.UUID, owner_id: uuid.UUID | None = None
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """The updates of one item; with ``owner_id``, counted as one of that owner's streams."""
        async with self._subscribed(self._listeners, item_id, owner_id) as queue:
            yield queue

    @contextlib.asynccontextmanager
    async def listen_owner(
        self, owner_id: uuid.UUID
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """The updates of every item of ``owner_id``, counted as one of its streams."""
        async with self._subscribed(self._owners, owner_id, owner_id) as queue:
            yield queue

    @contextlib.asynccontextmanager
    async def _subscribed(
        self,
        listeners: dict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]],
        key: uuid.UUID,
        owner_id: uuid.UUID | None,
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        listeners[key].add(queue)
        if owner_id is not None:
            self._streams[owner_id] += 1
        try:
            yield queue
        finally:
            listeners[key].discard(queue)
            if not listeners[key]:
                del listeners[key]
            if owner_id is not None:
                self._streams[owner_id] -= 1
                if not self._streams[owner_id]:
                    del self._streams[owner_id]


def _payload_to(callback: Callable[[str], None]) -> Callable[[Any, int, str, object], None]:
    def on_notify(_connection: Any, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    return on_notify
