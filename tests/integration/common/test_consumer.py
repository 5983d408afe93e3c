"""The shared failure policy on a real RabbitMQ: back-off retries, permanent failures,
dead-lettering of exhausted and poison messages, unroutable publishes."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker

from prsnl_common.broker import EventPublisher, Topology, create_broker
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.errors import PermanentError, TransientError
from prsnl_common.events import ItemDeleted, ItemFailed, RetryScheduled, utcnow
from prsnl_common.settings import CommonSettings
from tests.support.stack import RABBITMQ_URL, remove_namespace
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
# Retry notices heard by run_stage's subscriber, by item.
RETRIES: dict[uuid.UUID, list[RetryScheduled]] = {}


@pytest.fixture
async def settings() -> AsyncIterator[CommonSettings]:
    common = CommonSettings(
        namespace=f"c{uuid.uuid4().hex[:10]}",
        rabbitmq_url=RABBITMQ_URL,
        retry_delays="0.2,0.4",
        max_attempts=3,
    )
    yield common
    await remove_namespace(common.namespace)


async def queue_depth(name: str) -> int:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def run_stage(
    settings: CommonSettings, handler, concurrency: int = 1
) -> tuple[RabbitBroker, Topology, list[ItemFailed]]:  # type: ignore[no-untyped-def]
    broker = create_broker(settings)
    topology = Topology(settings)
    subscribe_stage(
        broker,
        topology,
        service="storage-janitor",
        stage="catalog",
        event_type=ItemDeleted,
        handler=handler,
        concurrency=concurrency,
    )
    failures: list[ItemFailed] = []

    @broker.subscriber(topology.stage_queue("ingest", ItemFailed), topology.events)
    async def on_item_failed(event: ItemFailed) -> None:
        failures.append(event)

    @broker.subscriber(topology.stage_queue("ingest", RetryScheduled), topology.events)
    async def on_retry_scheduled(event: RetryScheduled) -> None:
        RETRIES.setdefault(event.item_id, []).append(event)

    await broker.connect()
    await topology.declare(service="storage-janitor")
    await broker.start()
    return broker, topology, failures


async def test_transient_failures_retry_with_back_off_then_succeed(
    settings: CommonSettings,
) -> None:
    attempts: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def handler(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
        attempts.append((job.attempt, asyncio.get_running_loop().time()))
        if job.attempt < 3:
            raise TransientError("network_error", "connection reset")
        done.set()

    broker, topology, failures = await run_stage(settings, handler)
    try:
        item_id = uuid.uuid4()
        before = utcnow()
        await EventPublisher(broker, topology).publish(ItemDeleted(item_id=item_id))
        await asyncio.wait_for(done.wait(), 10)
        assert [a for a, _ in attempts] == [1, 2, 3]
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.18 and gaps[1] >= 0.38  # the tiers' delays
        assert failures == []

        async def both_announced() -> bool:
            return len(RETRIES.get(item_id, [])) == 2

        # The item can say it waits: which attempt failed, of how many, when the next starts.
        await eventually(both_announced)
        notices = sorted(RETRIES[item_id], key=lambda n: n.attempt)
        assert [(n.attempt, n.max_attempts, n.error_code) for n in notices] == [
            (1, 3, "network_error"),
            (2, 3, "network_error"),
        ]
        assert notices[0].message == "connection reset"
        assert notices[0].next_attempt_at >= before + dt.timedelta(seconds=0.2)
    finally:
        await broker.stop()


async def test_permanent_failure_is_reported_once_and_not_retried(settings: CommonSettings) -> None:
    calls: list[int] = []

    async def handler(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
        calls.append(job.attempt)
        raise PermanentError("too_large", "over the cap")

    broker, topology, failures = await run_stage(settings, handler)
    try:
        item_id = uuid.uuid4()
        await EventPublisher(broker, topology).publish(ItemDeleted(item_id=item_id, run=2))

        async def reported() -> bool:
            return bool(failures)

        await eventually(reported)
        await asyncio.sleep(0.6)
        assert calls == [1]
        assert len(failures) == 1
        failure = failures[0]
        assert (failure.item_id, failure.run, failure.error_code) == (item_id, 2, "too_large")
        assert failure.retryable is False and failure.attempts == 1
        assert await queue_depth(topology.dlq_name("storage-janitor")) == 0
    finally:
        await broker.stop()


async def test_exhausted_and_poison_messages_land_in_the_dead_letter_queue(
    settings: CommonSettings,
) -> None:
    async def handler(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
        raise RuntimeError("a bug")

    broker, topology, failures = await run_stage(settings, handler)
    dlq = topology.dlq_name("storage-janitor")
    try:
        await EventPublisher(broker, topology).publish(ItemDeleted(item_id=uuid.uuid4()))

        async def one_dead() -> bool:
            return await queue_depth(dlq) == 1

        await eventually(one_dead)
        assert [(f.error_code, f.attempts, f.retryable) for f in failures] == [
            ("internal_error", 3, True)
        ]
        await broker.publish(b"{not json", exchange=topology.events, routing_key="item.deleted")

        async def two_dead() -> bool:
            return await queue_depth(dlq) == 2

        await eventually(two_dead)
        # The catalog's copy of every dead letter, to mark items failed.
        assert await queue_depth(f"{settings.namespace}.ingest.dead-lettered") == 2
    finally:
        await broker.stop()


async def test_a_publish_no_queue_takes_raises(settings: CommonSettings) -> None:
    broker = create_broker(settings)
    topology = Topology(settings)
    await broker.connect()
    await broker.declare_exchange(topology.events)
    try:
        with pytest.raises(Exception, match="NO_ROUTE"):
            await EventPublisher(broker, topology).publish(ItemDeleted(item_id=uuid.uuid4()))
    finally:
        await broker.stop()


async def test_an_operator_inspects_and_replays_a_dead_letter(settings: CommonSettings) -> None:
    from prsnl_common import dlq

    broken = True
    handled: list[uuid.UUID] = []

    async def handler(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
        if broken:
            raise TransientError("network_error", "down")
        handled.append(event.item_id)

    broker, topology, _ = await run_stage(settings, handler)
    try:
        item_id = uuid.uuid4()
        await EventPublisher(broker, topology).publish(ItemDeleted(item_id=item_id))

        async def dead() -> bool:
            return await queue_depth(topology.dlq_name("storage-janitor")) == 1

        await eventually(dead)
        assert (await dlq.depths(settings))["storage-janitor"] == 1
        [entry] = await dlq.show(settings, "storage-janitor", 10)
        assert entry["from"] == topology.queue_name("storage-janitor", "item.deleted")
        assert entry["reason"] == "rejected" and str(item_id) in entry["body"]
        assert await queue_depth(topology.dlq_name("storage-janitor")) == 1  # show left it

        broken = False
        assert await dlq.replay(settings, "storage-janitor") == 1

        async def handled_once() -> bool:
            return handled == [item_id]

        await eventually(handled_once)
        assert await queue_depth(topology.dlq_name("storage-janitor")) == 0
    finally:
        await broker.stop()


@pytest.mark.parametrize("concurrency", [2, 3])
async def test_a_stage_runs_as_many_jobs_at_once_as_its_concurrency(
    settings: CommonSettings, concurrency: int
) -> None:
    """One slow job never holds the others behind it: N deliveries run together."""
    running: set[uuid.UUID] = set()
    all_in = asyncio.Event()
    release = asyncio.Event()

    async def handler(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
        running.add(event.item_id)
        if len(running) == concurrency:
            all_in.set()
        await release.wait()

    broker, topology, failures = await run_stage(settings, handler, concurrency)
    try:
        publisher = EventPublisher(broker, topology)
        for _ in range(concurrency + 1):
            await publisher.publish(ItemDeleted(item_id=uuid.uuid4()))
        await asyncio.wait_for(all_in.wait(), 10)
        # The prefetch bounds it: the extra message waits for a free slot.
        assert len(running) == concurrency
        release.set()

        async def all_done() -> bool:
            return len(running) == concurrency + 1

        await eventually(all_done)
        assert failures == []
    finally:
        release.set()
        await broker.stop()
