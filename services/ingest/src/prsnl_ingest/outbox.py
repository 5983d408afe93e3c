"""The transactional outbox: events written with the catalog change, published by a relay.

``enqueue`` runs inside the caller's transaction, so an item and its
``url.captured`` commit together or not at all. The relay takes rows with
``FOR UPDATE SKIP LOCKED`` (several gateway replicas never publish the same row
at once), publishes each with confirms, and deletes it in the same transaction.
If RabbitMQ is down the rows wait and the relay keeps trying with back-off: a
capture answered 202 is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from faststream.rabbit import RabbitBroker
from opentelemetry import propagate, trace

from prsnl_common.broker import Topology
from prsnl_common.events import EVENTS_BY_KEY, Event

CHANNEL = "prsnl_outbox"
BATCH = 100
logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


async def enqueue(connection: asyncpg.Connection | PoolConnectionProxy, event: Event) -> None:
    """Add ``event`` to the outbox in the current transaction, with the trace context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    await connection.execute(
        "INSERT INTO outbox (routing_key, payload, headers) VALUES ($1, $2, $3)",
        event.routing_key,
        event.model_dump(mode="json"),
        carrier,
    )
    await connection.execute("SELECT pg_notify($1, '')", CHANNEL)


class OutboxRelay:
    """Publishes outbox rows until stopped; wakes on NOTIFY or every ``poll`` seconds."""

    def __init__(
        self, pool: asyncpg.Pool, broker: RabbitBroker, topology: Topology, *, poll: float = 1.0
    ) -> None:
        self.pool = pool
        self.broker = broker
        self.topology = topology
        self.poll = poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self, dsn: str) -> None:
        self._listener = await asyncpg.connect(dsn)
        await self._listener.add_listener(CHANNEL, lambda *_: self._wake.set())
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener:
            with contextlib.suppress(Exception):
                await self._listener.close()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                published = await self.publish_batch()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published == BATCH:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def publish_batch(self) -> int:
        """Publish and delete up to ``BATCH`` rows; returns how many were published."""
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                "SELECT id, routing_key, payload, headers FROM outbox "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                BATCH,
            )
            for row in rows:
                await self._publish(row["routing_key"], row["payload"], row["headers"])
            if rows:
                await connection.execute(
                    "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                )
            return len(rows)

    async def _publish(self, routing_key: str, payload: dict[str, Any], carrier: Any) -> None:
        event_type = EVENTS_BY_KEY[routing_key]
        parent = propagate.extract(carrier if isinstance(carrier, dict) else json.loads(carrier))
        with tracer.start_as_current_span(f"outbox publish {routing_key}", context=parent):
            await self.broker.publish(
                event_type.model_validate(payload),
                exchange=self.topology.events,
                routing_key=routing_key,
                persist=event_type.persistent,
                mandatory=True,
                message_id=str(payload["event_id"]),
                content_type="application/json",
            )
