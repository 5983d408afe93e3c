"""Work on a deleted item stops: every worker replica hears of ``item.deleted`` at once.

Each process subscribes a queue of its own (exclusive, auto-deleted) to
``item.deleted``. A job in flight for that item is cancelled (its child
process or ffmpeg killed, its scratch removed), and later deliveries for it —
retries, redeliveries — are acknowledged without contacting the source again.
Whatever a stage still manages to store for a deleted item is handed to the
janitor by the catalog, which no longer knows the item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Iterator

from faststream.rabbit import RabbitBroker, RabbitQueue

from prsnl_common.broker import Topology
from prsnl_common.events import ItemDeleted

REMEMBER_SECONDS = 3600.0  # longer than every back-off of a retried job
logger = logging.getLogger(__name__)


class Deletions:
    """Deleted items of the last hour and the jobs running for each item in this process."""

    def __init__(self, remember: float = REMEMBER_SECONDS) -> None:
        self.remember = remember
        self._deleted: dict[uuid.UUID, float] = {}
        self._running: dict[uuid.UUID, set[asyncio.Task[object]]] = {}

    def is_deleted(self, item_id: uuid.UUID) -> bool:
        return item_id in self._deleted

    def note(self, item_id: uuid.UUID) -> int:
        """Remember the deletion and cancel this item's jobs; returns how many were stopped."""
        now = time.monotonic()
        self._deleted[item_id] = now
        self._deleted = {k: t for k, t in self._deleted.items() if now - t < self.remember}
        tasks = self._running.get(item_id, set())
        for task in tasks:
            task.cancel(f"item {item_id} was deleted")
        return len(tasks)

    @contextlib.contextmanager
    def job(self, item_id: uuid.UUID) -> Iterator[None]:
        """Mark the current task as working on ``item_id`` while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        self._running.setdefault(item_id, set()).add(task)
        try:
            yield
        finally:
            running = self._running.get(item_id, set())
            running.discard(task)
            if not running:
                self._running.pop(item_id, None)


_BY_BROKER: weakref.WeakKeyDictionary[RabbitBroker, Deletions] = weakref.WeakKeyDictionary()


def deletions_of(broker: RabbitBroker, topology: Topology, service: str) -> Deletions:
    """The process's Deletions for ``broker``, subscribed to ``item.deleted`` on first use."""
    existing = _BY_BROKER.get(broker)
    if existing is not None:
        return existing
    deletions = _BY_BROKER[broker] = Deletions()
    queue = RabbitQueue(
        f"{topology.namespace}.{service}.deletions.{uuid.uuid4().hex[:12]}",
        exclusive=True,
        auto_delete=True,
        routing_key=ItemDeleted.routing_key,
    )

    @broker.subscriber(queue, topology.events)
    async def on_item_deleted(event: ItemDeleted) -> None:
        stopped = deletions.note(event.item_id)
        if stopped:
            logger.info(
                "item deleted; %d job(s) stopped", stopped, extra={"item_id": str(event.item_id)}
            )

    return deletions
