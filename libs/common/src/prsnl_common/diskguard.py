"""Low disk: a worker stops taking jobs while the media store's disk is nearly full.

Every ``interval`` seconds the free space of the media store is compared with
the threshold. Below it, the consumers of the worker's stage queues are
cancelled (``basic.cancel``): new messages stay in their queues — nothing is
failed, retried or dead-lettered — and the job in flight finishes. When space
returns the consumers are started again with their old tags. The condition is
logged once each way, exported as ``prsnl_low_disk_paused{service}`` and shown
in the worker's ``/readyz``, and announced as a
:class:`~prsnl_common.events.StageState` (again every ``ANNOUNCE_SECONDS`` while
paused) for the gateway to show on the items that wait; the
:class:`~prsnl_common.liveness.ConsumerWatch` leaves paused queues alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from faststream.rabbit import RabbitBroker
from prometheus_client import Gauge

from prsnl_common.errors import TransientError
from prsnl_common.events import StageState
from prsnl_common.liveness import ConsumerWatch
from prsnl_common.tasks import cancel_and_wait

logger = logging.getLogger(__name__)
PAUSED = Gauge(
    "prsnl_low_disk_paused", "1 while the worker takes no jobs for lack of disk", ["service"]
)
FREE = Gauge(
    "prsnl_low_disk_free_bytes", "Free bytes of the media store seen by the worker", ["service"]
)


DISK_POLL_SECONDS = 2.0
ANNOUNCE_SECONDS = 30.0  # a paused stage says so again this often


async def wait_for_disk(
    free_bytes: Callable[[], int], min_free: int, limit: float, *, jobs: str
) -> None:
    """Wait, the message unacknowledged, until the media store has ``min_free`` bytes free.

    For the job already delivered when the disk fills (the consumer pause stops the
    next ones). Only past ``limit`` — with the job's own time limit, inside RabbitMQ's
    consumer timeout — does the job fail transiently and go back through the retry path.
    ``jobs`` names what waits, for the error message ("downloads").
    """
    deadline = time.monotonic() + limit
    while (free := free_bytes()) < min_free:
        if time.monotonic() > deadline:
            raise TransientError(
                "insufficient_disk",
                f"Only {format_size(free)} free in the media store; {jobs} wait until "
                f"{format_size(min_free)} are free.",
            )
        await asyncio.sleep(DISK_POLL_SECONDS)


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


class LowDiskPause:
    """Pauses the consumers of ``queues`` while ``root``'s disk has under ``min_free()`` free."""

    def __init__(
        self,
        broker: RabbitBroker,
        watch: ConsumerWatch,
        service: str,
        *,
        root: Path,
        min_free: Callable[[], int],
        queues: set[str],
        interval: float = 2.0,
        announce: Callable[[StageState], Awaitable[None]] | None = None,
        announce_every: float = ANNOUNCE_SECONDS,
    ) -> None:
        self.broker = broker
        self.watch = watch
        self.service = service
        self.root = root
        self.min_free = min_free
        self.queues = queues
        self.interval = interval
        self.announce = announce
        self.announce_every = announce_every
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._announced = -math.inf  # monotonic time of the last announcement
        self.free = -1
        self._consumers: dict[str, tuple[Any, str, dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def paused(self) -> bool:
        return bool(self._consumers)

    def readiness(self) -> dict[str, str]:
        if not self.paused:
            return {"disk": "ok"}
        return {
            "disk": f"paused: {format_size(self.free)} free in the media store, below "
            f"{format_size(self.min_free())}; jobs wait in their queues"
        }

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="low-disk")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a broker hiccup: the next round tries again
                logger.warning("low-disk check failed", exc_info=True)
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        """One round: pause below the threshold, resume at or above it."""
        self.free = shutil.disk_usage(self.root).free
        FREE.labels(self.service).set(self.free)
        low = self.free < self.min_free()
        changed = low != self.paused
        if low and not self.paused:
            await self._pause()
        elif not low and self.paused:
            await self._resume()
        PAUSED.labels(self.service).set(1 if self.paused else 0)
        if changed or (self.paused and time.monotonic() - self._announced >= self.announce_every):
            await self._announce()

    async def _announce(self) -> None:
        """Tell the gateway (which shows it on the waiting items) the stage's state."""
        if self.announce is None:
            return
        state = StageState(
            service=self.service,
            instance=self.instance,
            paused=self.paused,
            free_bytes=max(self.free, 0),
            min_free_bytes=self.min_free(),
        )
        await self.announce(state)
        self._announced = time.monotonic()

    async def _pause(self) -> None:
        subscribers: list[Any] = list(self.broker.subscribers)
        for subscriber in subscribers:
            queue = getattr(subscriber, "_queue_obj", None)
            tag = getattr(subscriber, "_consumer_tag", None)
            name = subscriber.queue.name
            if name not in self.queues or queue is None or tag is None:
                continue
            consumer = dict(queue._consumers.get(tag) or {})
            if not consumer:
                continue
            self.watch.paused.add(name)
            await queue.cancel(tag)
            self._consumers[name] = (queue, tag, consumer)
        logger.warning(
            "low disk: %s free in the media store, below %s; taking no new jobs from %s",
            format_size(self.free),
            format_size(self.min_free()),
            ", ".join(sorted(self._consumers)) or "no queue",
        )

    async def _resume(self) -> None:
        for name, (queue, tag, consumer) in list(self._consumers.items()):
            await queue.consume(consumer_tag=tag, **consumer)
            del self._consumers[name]
            self.watch.paused.discard(name)
        logger.warning("disk space is back (%s free); taking jobs again", format_size(self.free))
