"""Every subscriber keeps a live consumer, or the process says so and ends.

After a broker restart, or when RabbitMQ cancels a consumer from its side (a
quorum queue changing leader, a queue deleted and declared again), a client
can stay connected with a queue that has no consumer: messages then wait
forever. aio-pika restores consumers only when the connection itself is
re-established, and FastStream does not notice a cancelled consumer at all.

:class:`ConsumerWatch` checks every few seconds that each subscriber of the
broker has its consumer on an open channel. A missing one is restored in
place (queue declared, bindings and consumer re-created, as aio-pika does
after a reconnect); while any is missing the process is not ready; if one
stays missing past ``give_up_after`` seconds the watch calls ``give_up``
(by default: a SIGTERM to this process, so it stops cleanly and its
supervisor starts it again).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from faststream.rabbit import RabbitBroker
from prometheus_client import Gauge

from prsnl_common.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

CONSUMERS_MISSING = Gauge(
    "prsnl_consumers_missing",
    "Subscribers of this process without a live consumer on the broker",
    ["service"],
    multiprocess_mode="livesum",  # the gateway's workers add up (prsnl_ingest.serving)
)


def is_consuming(subscriber: Any) -> bool:
    """True when the subscriber's consumer tag is registered on an open channel."""
    queue = getattr(subscriber, "_queue_obj", None)
    tag = getattr(subscriber, "_consumer_tag", None)
    if queue is None or tag is None:
        return False
    channel = queue.channel
    if channel.is_closed:
        return False
    # aio-pika's channel wraps aiormq's, which drops a tag when the broker cancels it.
    raw = getattr(getattr(channel, "_channel", None), "channel", None)
    consumers = getattr(raw, "consumers", None)
    return consumers is None or tag in consumers


def terminate_self() -> None:
    """Ask this process to stop as on SIGTERM: in-flight work is finished or handed back."""
    os.kill(os.getpid(), signal.SIGTERM)


class ConsumerWatch:
    """Watches the subscribers of ``broker`` that consume (see the module docstring)."""

    def __init__(
        self,
        broker: RabbitBroker,
        service: str,
        *,
        interval: float = 2.0,
        give_up_after: float = 60.0,
        give_up: Callable[[], None] = terminate_self,
    ) -> None:
        self.broker = broker
        self.service = service
        self.interval = interval
        self.give_up_after = give_up_after
        self.give_up = give_up
        self._missing_since: dict[str, float] = {}
        # Queues whose consumer was cancelled on purpose (low disk): not restored here.
        self.paused: set[str] = set()
        self._checked = False
        self._task: asyncio.Task[None] | None = None

    @property
    def missing(self) -> list[str]:
        """Queues whose consumer was missing at the last check."""
        return sorted(self._missing_since)

    @property
    def ready(self) -> bool:
        """At least one round ran, and it found every consumer."""
        return self._checked and not self._missing_since

    async def start(self) -> None:
        """Check now and then every ``interval`` seconds (async: it must run on the loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="consumer-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._checked = False

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        """One round: note missing consumers, restore them, give up on one missing too long.

        Time spent disconnected does not count towards giving up: aio-pika
        reconnects by itself, and a broker outage is not this process's fault.
        """
        now = time.monotonic()
        subscribers: list[Any] = list(self.broker.subscribers)
        for subscriber in subscribers:
            name = subscriber.queue.name
            paused = name in self.paused
            if paused or not getattr(subscriber, "calls", None) or is_consuming(subscriber):
                self._missing_since.pop(name, None)
                continue
            if not _connected(subscriber):
                self._missing_since[name] = now
                continue
            since = self._missing_since.setdefault(name, now)
            if await self._restore(subscriber):
                self._missing_since.pop(name, None)
            elif now - since > self.give_up_after:
                logger.critical(
                    "queue %s has had no consumer for %.0f s; stopping so the process restarts",
                    name,
                    now - since,
                )
                self.give_up()
        CONSUMERS_MISSING.labels(self.service).set(len(self._missing_since))
        self._checked = True

    async def _restore(self, subscriber: Any) -> bool:
        """Declare, bind and consume again with the same tag, as aio-pika does on reconnect."""
        name = subscriber.queue.name
        logger.warning("queue %s lost its consumer; restoring it", name)
        try:
            await subscriber._queue_obj.restore()
        except Exception as exc:
            logger.warning("could not restore the consumer of %s: %s", name, exc)
            return False
        return is_consuming(subscriber)


def _connected(subscriber: Any) -> bool:
    queue = getattr(subscriber, "_queue_obj", None)
    return queue is not None and not queue.channel.is_closed
