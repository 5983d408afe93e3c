"""The transactional outbox: events written with the catalog change, published by a relay.

``enqueue`` runs inside the caller's transaction, so an item and its
``url.captured`` commit together or not at all. The relay takes rows with
``FOR UPDATE SKIP LOCKED`` (several gateway replicas never publish the same row
at once), publishes each with confirms, and deletes the confirmed ones in the
same transaction. If RabbitMQ is down the rows wait and the relay keeps trying
with back-off: a capture answered 202 is never lost.

The relay publishes on an AMQP connection of its own with aio-pika, the stored
JSON as it is: through FastStream's publish (its telemetry and Prometheus
middlewares, the event serialised again) a message cost ~270 us of CPU, here
~150 us, a tenth of a capture. RabbitMQ's flow control of a publishing connection
then never holds up the gateway's consumers either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter

from prsnl_common.broker import Topology
from prsnl_common.events import EVENTS_BY_KEY, Event
from prsnl_common.tasks import cancel_and_wait

CHANNEL = "prsnl_outbox"
BATCH = 100
PUBLISH_TIMEOUT = 10.0  # seconds for one publish and its confirm
MAX_ATTEMPTS = 10  # failed publishes before a row is quarantined
QUARANTINED = Counter(
    "prsnl_outbox_quarantined_total", "Outbox rows set aside after failing to publish"
)
PUBLISHED = Counter(
    "prsnl_outbox_published_total", "Outbox rows published and confirmed", ["routing_key"]
)
logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


def outbox_row(event: Event) -> tuple[str, Any, dict[str, str]]:
    """The outbox columns of ``event``: routing key, payload and the current trace context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return event.routing_key, event.model_dump(mode="json"), carrier


async def enqueue(connection: asyncpg.Connection | PoolConnectionProxy, event: Event) -> None:
    """Add ``event`` to the outbox in the current transaction, with the trace context."""
    await connection.execute(
        # The row and the relay's wake-up (sent on commit) in one round trip.
        "WITH row AS (INSERT INTO outbox (routing_key, payload, headers) VALUES ($1, $2, $3)) "
        "SELECT pg_notify($4, '')",
        *outbox_row(event),
        CHANNEL,
    )


class OutboxRelay:
    """Publishes outbox rows until stopped; woken by :meth:`wake` (the NOTIFY on
    ``CHANNEL``, heard on the gateway's one listening connection) or every ``poll``
    seconds, then lingers ``linger`` seconds to take the rows that follow in the same batch.

    Rows of a batch are published concurrently, each with its own confirm and
    time limit; the confirmed ones are deleted in the batch's transaction, so a
    failure at row k never publishes the rows before it again. A failed row
    keeps its place with ``attempts`` and ``last_error``; one that cannot be
    built at all, or that failed ``max_attempts`` times, is quarantined (kept
    with its reason, skipped from then on, counted in a metric) so it never
    holds up the captures after it.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        rabbitmq_url: str,
        topology: Topology,
        *,
        poll: float = 1.0,
        linger: float = 0.0,
        publish_timeout: float = PUBLISH_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.pool = pool
        self.rabbitmq_url = rabbitmq_url
        self.topology = topology
        self.poll = poll
        self.linger = linger
        self.publish_timeout = publish_timeout
        self.max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None

    async def connect(self) -> None:
        """Open the publishing connection (it reconnects by itself after a broker outage)."""
        self._connection = await aio_pika.connect_robust(self.rabbitmq_url)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.get_exchange(self.topology.events.name, ensure=False)

    async def start(self) -> None:
        await self.connect()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()

    def wake(self, _payload: str = "") -> None:
        """Rows are waiting: a NOTIFY on ``CHANNEL`` (heard on the gateway's listening
        connection), or that connection is back and one may have been missed."""
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            self._wake.clear()  # a NOTIFY from now on is for rows this round may not see
            try:
                batch = await self.publish_batch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                batch = Batch(failed=1)
                logger.warning("outbox relay: %s", exc)
            if batch.failed:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            if batch.taken == BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)
            # The rows committed meanwhile come in the same batch: one transaction (and, with
            # several replicas, one wake-up each) for many captures rather than for each.
            await asyncio.sleep(self.linger)

    async def publish_batch(self) -> Batch:
        """Publish up to ``BATCH`` rows; delete the confirmed, record or quarantine the rest."""
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                "SELECT id, routing_key, payload::text AS payload, headers, attempts FROM outbox "
                "WHERE quarantined_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                BATCH,
            )
            errors = await asyncio.gather(*(self._publish_row(row) for row in rows))
            done = [row["id"] for row, error in zip(rows, errors, strict=True) if error is None]
            if done:
                await connection.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", done)
            failed = [(row, error) for row, error in zip(rows, errors, strict=True) if error]
            for row, error in failed:
                await self._record_failure(connection, row, error)
            return Batch(taken=len(rows), failed=len(failed))

    async def _publish_row(self, row: asyncpg.Record) -> RowError | None:
        """None when the broker confirmed the row; otherwise why not."""
        try:
            event = build_event(row["routing_key"], row["payload"])
        except (KeyError, ValueError) as exc:
            return RowError(f"not a valid event: {exc}", poison=True)
        try:
            async with asyncio.timeout(self.publish_timeout):
                await self._publish(event, row["payload"], row["headers"])
        except TimeoutError:
            return RowError(f"no confirm within {self.publish_timeout:g} s")
        except DeliveryError as exc:
            # The broker answered about this message (unroutable, refused): its own fault.
            return RowError(f"refused by the broker: {exc}", counts=True)
        except Exception as exc:
            return RowError(f"{type(exc).__name__}: {exc}")
        return None

    async def _record_failure(
        self, connection: PoolConnectionProxy, row: asyncpg.Record, error: RowError
    ) -> None:
        attempts = row["attempts"] + (1 if error.counts or error.poison else 0)
        quarantine = error.poison or attempts >= self.max_attempts
        await connection.execute(
            "UPDATE outbox SET attempts = $2, last_error = $3, "
            "quarantined_at = CASE WHEN $4 THEN now() END WHERE id = $1",
            row["id"],
            attempts,
            error.reason[:2000],
            quarantine,
        )
        if quarantine:
            QUARANTINED.inc()
            logger.error(
                "outbox row %d (%s) quarantined after %d attempt(s): %s",
                row["id"],
                row["routing_key"],
                attempts,
                error.reason,
            )
        else:
            logger.warning("outbox row %d not published: %s", row["id"], error.reason)

    async def _publish(self, event: Event, body: str, carrier: Any) -> None:
        """The stored event as it is, persistent and mandatory, traced as the capture's child."""
        if self._exchange is None:
            raise ConnectionError("the relay's broker connection is not open")
        parent = propagate.extract(carrier if isinstance(carrier, dict) else json.loads(carrier))
        name = f"outbox publish {event.routing_key}"
        with tracer.start_as_current_span(name, context=parent, kind=SpanKind.PRODUCER) as span:
            span.set_attribute("messaging.system", "rabbitmq")
            span.set_attribute("messaging.destination.name", self.topology.events.name)
            span.set_attribute("messaging.rabbitmq.destination.routing_key", event.routing_key)
            headers: dict[str, Any] = {}
            propagate.inject(headers)  # the consumers' spans are children of this one
            message = aio_pika.Message(
                body.encode(),
                headers=headers,
                content_type="application/json",
                message_id=str(event.event_id),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                if event.persistent
                else aio_pika.DeliveryMode.NOT_PERSISTENT,
            )
            await self._exchange.publish(message, event.routing_key, mandatory=True)
        PUBLISHED.labels(event.routing_key).inc()


@dataclass(frozen=True)
class Batch:
    """What one round of the relay did."""

    taken: int = 0
    failed: int = 0


@dataclass(frozen=True)
class RowError:
    """Why a row was not published.

    ``poison``: it can never be (quarantined at once); ``counts``: the broker
    refused this very message, an attempt towards quarantine. Anything else (no
    connection, no confirm in time) is the broker's state, not the row's: the
    row waits, however long the outage lasts.
    """

    reason: str
    poison: bool = False
    counts: bool = False


def build_event(routing_key: str, payload: str) -> Event:
    """The typed event of a row's JSON; KeyError or ValueError when the row cannot be one."""
    event_type = EVENTS_BY_KEY[routing_key]
    return event_type.model_validate_json(payload)
