"""The RabbitMQ broker factory and the topology every service shares.

Topology (``<ns>`` is the namespace setting):

* ``<ns>.events`` — the durable topic exchange every event is published to.
* ``<ns>.<service>.<event>`` — one durable quorum queue per consuming service
  and event (``prsnl.downloader.url-captured``), with a delivery limit and a
  dead-letter exchange; competing consumers scale a stage.
* ``<ns>.retry`` — a headers exchange that routes a message to the delay queue
  of its back-off tier (``<ns>.retry.<ms>``); when the message expires there it
  is dead-lettered through the default exchange straight back to the queue
  named by its routing key — only the stage that failed sees it again.
* ``<ns>.dead-letter`` — a topic exchange; each stage's rejected or
  over-delivered messages land in ``<ns>.<service>.dlq`` for an operator to
  inspect and replay, and a copy reaches ``<ns>.ingest.dead-lettered`` so the
  catalog marks the item failed instead of leaving it silent.

Durable events are published persistent, with publisher confirms and
``mandatory``: a publish that no queue takes raises instead of vanishing.
"""

from __future__ import annotations

import logging
from typing import Any

import aio_pika
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)

from prsnl_common.events import (
    Event,
    FileOrphaned,
    ItemDeleted,
    ItemFailed,
    RetryScheduled,
    StageState,
    TranscodeRequested,
    UrlCaptured,
    VideoDownloaded,
    VideoDownloadProgress,
    VideoTranscoded,
    VideoTranscodeProgress,
)
from prsnl_common.settings import CommonSettings

ATTEMPT_HEADER = "prsnl-attempt"
# Headers exchanges ignore headers that start with "x-" when matching.
TIER_HEADER = "prsnl-retry-tier"
PROGRESS_QUEUE_MAX = 10_000
PROGRESS_TTL_MS = 60_000

logger = logging.getLogger(__name__)

# Who consumes what. Every service declares all of these queues at start-up, so
# an event published before its consumer ever ran waits in its queue instead of
# being unroutable.
SUBSCRIPTIONS: dict[str, tuple[type[Event], ...]] = {
    "downloader": (UrlCaptured,),
    "transcoder": (VideoDownloaded, TranscodeRequested),
    "storage-janitor": (ItemDeleted, FileOrphaned),
    "ingest": (
        VideoDownloadProgress,
        VideoTranscodeProgress,
        VideoDownloaded,
        VideoTranscoded,
        ItemFailed,
        RetryScheduled,
    ),
}

# Front ends that answer people from pipeline events. Their queues are declared by the
# front end itself, so a deployment without it keeps no queue filling up for nobody;
# once declared they are durable like every other, and keep what is due while it is down.
FRONT_END_SUBSCRIPTIONS: dict[str, tuple[type[Event], ...]] = {
    "telegram-gateway": (
        VideoTranscoded,
        ItemFailed,
        VideoDownloadProgress,
        VideoTranscodeProgress,
    ),
}


class Topology:
    """Names and declarations of exchanges and queues for one namespace."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        ns = settings.namespace
        self.namespace = ns
        self.events = RabbitExchange(f"{ns}.events", type=ExchangeType.TOPIC, durable=True)
        self.retry = RabbitExchange(f"{ns}.retry", type=ExchangeType.HEADERS, durable=True)
        self.dead_letter = RabbitExchange(
            f"{ns}.dead-letter", type=ExchangeType.TOPIC, durable=True
        )

    def queue_name(self, service: str, routing_key: str) -> str:
        return f"{self.namespace}.{service}.{routing_key.replace('.', '-')}"

    def dlq_name(self, service: str) -> str:
        return f"{self.namespace}.{service}.dlq"

    def retry_queue_name(self, delay: float) -> str:
        return f"{self.namespace}.retry.{int(delay * 1000)}ms"

    def stage_queue(self, service: str, event: type[Event]) -> RabbitQueue:
        """The durable quorum queue of ``service`` for ``event``."""
        if not event.persistent:
            return self.progress_queue(service, event)
        return RabbitQueue(
            self.queue_name(service, event.routing_key),
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=event.routing_key,
            arguments={
                "x-dead-letter-exchange": self.dead_letter.name,
                "x-dead-letter-routing-key": service,
                "x-delivery-limit": self.settings.delivery_limit,
            },
        )

    def progress_queue(self, service: str, event: type[Event]) -> RabbitQueue:
        """A bounded classic queue for transient progress: old messages drop first."""
        return self._bounded_queue(service, event.routing_key)

    def _bounded_queue(self, service: str, routing_key: str) -> RabbitQueue:
        return RabbitQueue(
            self.queue_name(service, routing_key),
            queue_type=QueueType.CLASSIC,
            durable=True,
            routing_key=routing_key,
            arguments={
                "x-max-length": PROGRESS_QUEUE_MAX,
                "x-overflow": "drop-head",
                "x-message-ttl": PROGRESS_TTL_MS,
            },
        )

    def stage_state_queue(self) -> RabbitQueue:
        """Where the gateway hears workers pause and resume (bounded, old states drop)."""
        return self._bounded_queue("ingest", StageState.routing_key)

    async def publish_state(self, broker: RabbitBroker, state: StageState) -> None:
        """Announce a worker's stage state; not kept, not mandatory (no gateway: dropped)."""
        await broker.publish(
            state,
            exchange=self.events,
            routing_key=state.routing_key,
            persist=False,
            content_type="application/json",
        )

    def dead_lettered_queue(self) -> RabbitQueue:
        """Where the catalog hears of every dead-lettered message, to fail its item."""
        return RabbitQueue(
            f"{self.namespace}.ingest.dead-lettered",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key="#",
        )

    async def declare(self, *, service: str) -> None:
        """Declare the exchanges, retry tiers, every stage queue and the DLQs.

        Idempotent and safe to run from every replica at once. It runs on a
        connection of its own: FastStream caches a declared queue together with
        the channel it was declared on, and a subscriber then consumes on that
        cached channel — declaring here through the broker would put every
        consumer on the default channel (prefetch 1) instead of its own, and a
        stage's concurrency would never happen.
        """
        connection = await aio_pika.connect(self.settings.rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            await self._declare_on(channel, service)

    async def _declare_on(self, channel: aio_pika.abc.AbstractChannel, service: str) -> None:
        for exchange in (self.events, self.retry, self.dead_letter):
            await channel.declare_exchange(
                exchange.name, type=exchange.type.value, durable=exchange.durable
            )
        for delay in self.settings.retry_delay_list:
            tier = self.retry_queue_name(delay)
            queue = await channel.declare_queue(
                tier,
                durable=True,
                arguments={"x-message-ttl": int(delay * 1000), "x-dead-letter-exchange": ""},
            )
            await queue.bind(self.retry.name, arguments={"x-match": "all", TIER_HEADER: tier})
        for consumer, events in SUBSCRIPTIONS.items():
            for event in events:
                await _declare_bound(channel, self.stage_queue(consumer, event), self.events)
            await self._declare_dead_letter_queue(channel, consumer)
        for event in FRONT_END_SUBSCRIPTIONS.get(service, ()):
            await _declare_bound(channel, self.stage_queue(service, event), self.events)
        if service not in SUBSCRIPTIONS:
            await self._declare_dead_letter_queue(channel, service)
        await _declare_bound(channel, self.stage_state_queue(), self.events)
        await _declare_bound(channel, self.dead_lettered_queue(), self.dead_letter)

    async def _declare_dead_letter_queue(
        self, channel: aio_pika.abc.AbstractChannel, service: str
    ) -> None:
        dlq = RabbitQueue(
            self.dlq_name(service), queue_type=QueueType.QUORUM, durable=True, routing_key=service
        )
        await _declare_bound(channel, dlq, self.dead_letter)

    def retry_delay(self, attempt: int) -> float:
        """Seconds of back-off before the attempt that follows attempt number ``attempt``."""
        delays = self.settings.retry_delay_list
        return delays[min(attempt, len(delays)) - 1]

    def retry_tier(self, attempt: int) -> str:
        """The delay queue for the retry that follows attempt number ``attempt``."""
        return self.retry_queue_name(self.retry_delay(attempt))


async def _declare_bound(
    channel: aio_pika.abc.AbstractChannel, queue: RabbitQueue, exchange: RabbitExchange
) -> None:
    declared = await channel.declare_queue(
        queue.name, durable=queue.durable, arguments=queue.arguments
    )
    await declared.bind(exchange.name, routing_key=queue.routing())


def create_broker(
    settings: CommonSettings, *, middlewares: tuple[Any, ...] = (), prefetch: int = 1
) -> RabbitBroker:
    """A broker with confirms, mandatory publishing that raises, and quiet logging.

    FastStream's per-message INFO log costs ~20 % of throughput; message logs go
    to DEBUG and our structured logs say what matters.
    """
    return RabbitBroker(
        settings.rabbitmq_url,
        default_channel=Channel(
            prefetch_count=prefetch, publisher_confirms=True, on_return_raises=True
        ),
        middlewares=middlewares,
        log_level=logging.DEBUG,
        # Not FastStream's default logger, which has a coloured text handler of its own.
        logger=logging.getLogger(f"{__name__}.messages"),
        graceful_timeout=30.0,
        reconnect_interval=1.0,
    )


class EventPublisher:
    """Publishes events to the topic exchange: persistent, confirmed, mandatory."""

    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        self.broker = broker
        self.topology = topology

    async def publish(self, event: Event, *, headers: dict[str, Any] | None = None) -> None:
        await self.broker.publish(
            event,
            exchange=self.topology.events,
            routing_key=event.routing_key,
            persist=event.persistent,
            mandatory=event.persistent,
            message_id=str(event.event_id),
            headers=headers,
            content_type="application/json",
        )

    async def __call__(self, event: Event) -> None:
        await self.publish(event)
