"""The outbox relay on real PostgreSQL and RabbitMQ: confirmed rows go once, poison is set aside."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue

from prsnl_common.broker import Topology, create_broker
from prsnl_common.db import create_pool, ensure_database, migrate
from prsnl_common.events import ItemDeleted, UrlCaptured
from prsnl_common.settings import CommonSettings
from prsnl_ingest.live import LiveHub
from prsnl_ingest.outbox import CHANNEL, Batch, OutboxRelay, enqueue
from tests.support.stack import POSTGRES_URL, RABBITMQ_URL, drop_database, remove_namespace
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
MIGRATIONS = Path(__file__).parents[3] / "services/ingest/src/prsnl_ingest/migrations"


@pytest.fixture
async def settings() -> AsyncIterator[CommonSettings]:
    tag = uuid.uuid4().hex[:10]
    common = CommonSettings(
        database_url=f"{POSTGRES_URL}/prsnl_o{tag}", rabbitmq_url=RABBITMQ_URL, namespace=f"o{tag}"
    )
    await ensure_database(common.database_url)
    await migrate(common.database_url, MIGRATIONS)
    yield common
    await remove_namespace(common.namespace)
    await drop_database(common.database_url)


@pytest.fixture
async def pool(settings: CommonSettings) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(settings.database_url, max_size=2)
    yield created
    await created.close()


@pytest.fixture
async def broker(settings: CommonSettings) -> AsyncIterator[RabbitBroker]:
    """Only url.captured has a queue here: item.deleted is unroutable."""
    topology = Topology(settings)
    created = create_broker(settings)
    await created.connect()
    await created.declare_exchange(topology.events)
    queue = await created.declare_queue(RabbitQueue(f"{settings.namespace}.captured"))
    await queue.bind(topology.events.name, routing_key=UrlCaptured.routing_key)
    yield created
    await created.stop()


@pytest.fixture
async def relay(
    settings: CommonSettings, pool: asyncpg.Pool, broker: RabbitBroker
) -> AsyncIterator[OutboxRelay]:
    """A relay connected to the broker, with three attempts before quarantine."""
    created = OutboxRelay(pool, RABBITMQ_URL, Topology(settings), max_attempts=3)
    await created.connect()
    yield created
    await created.stop()


def captured() -> UrlCaptured:
    url = f"https://example.org/{uuid.uuid4().hex}.mp4"
    return UrlCaptured(
        item_id=uuid.uuid4(),
        url=url,
        normalized_url=url,
        platform="direct",
        source="api",
        owner_id=uuid.uuid4(),
    )


async def add_rows(pool: asyncpg.Pool, *events: UrlCaptured | ItemDeleted) -> None:
    async with pool.acquire() as connection, connection.transaction():
        for event in events:
            await enqueue(connection, event)


async def depth(settings: CommonSettings) -> int:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{settings.namespace}.captured", passive=True)
        return int(queue.declaration_result.message_count or 0)


async def test_a_row_the_broker_refuses_never_publishes_the_others_twice_and_is_quarantined(
    settings: CommonSettings, pool: asyncpg.Pool, relay: OutboxRelay
) -> None:
    await add_rows(pool, captured(), ItemDeleted(item_id=uuid.uuid4()), captured())
    for _ in range(3):
        await relay.publish_batch()
    # The two captures went once, although the row between them failed three rounds.
    assert await depth(settings) == 2
    [row] = await pool.fetch("SELECT * FROM outbox")
    assert row["routing_key"] == "item.deleted" and row["attempts"] == 3
    assert row["quarantined_at"] is not None and "NO_ROUTE" in row["last_error"]
    # Set aside: later captures pass, and the quarantined row is not tried again.
    await add_rows(pool, captured())
    batch = await relay.publish_batch()
    assert (batch.taken, batch.failed) == (1, 0)
    assert await depth(settings) == 3


async def test_a_row_that_is_not_an_event_is_quarantined_at_once(
    settings: CommonSettings, pool: asyncpg.Pool, relay: OutboxRelay
) -> None:
    await pool.execute(
        "INSERT INTO outbox (routing_key, payload) VALUES ('url.captured', $1)",
        json.dumps({"item_id": "not a uuid"}),
    )
    await add_rows(pool, captured())
    batch = await relay.publish_batch()
    assert (batch.taken, batch.failed) == (2, 1)
    [row] = await pool.fetch("SELECT * FROM outbox")
    assert row["quarantined_at"] is not None and "not a valid event" in row["last_error"]
    assert await depth(settings) == 1


async def test_an_unreachable_broker_never_quarantines_a_capture(
    settings: CommonSettings, pool: asyncpg.Pool
) -> None:
    """However long RabbitMQ is away, a capture answered 202 waits for it."""
    relay = OutboxRelay(pool, RABBITMQ_URL, Topology(settings), max_attempts=2)  # not connected
    await add_rows(pool, captured())
    for _ in range(4):
        assert (await relay.publish_batch()).failed == 1
    [row] = await pool.fetch("SELECT * FROM outbox")
    assert row["attempts"] == 0 and row["quarantined_at"] is None
    assert row["last_error"]


async def test_the_rows_that_follow_a_wake_up_share_its_batch(
    settings: CommonSettings, pool: asyncpg.Pool, broker: RabbitBroker
) -> None:
    """Woken by the first commit, the relay lingers: the next nine go in the same batch."""
    relay = OutboxRelay(pool, RABBITMQ_URL, Topology(settings), poll=60, linger=3)
    taken: list[int] = []
    publish_batch = relay.publish_batch

    async def counted() -> Batch:
        batch = await publish_batch()
        taken.append(batch.taken)
        return batch

    relay.publish_batch = counted  # type: ignore[method-assign]
    hub = LiveHub({CHANNEL: relay.wake})  # the gateway's listening connection
    await hub.start(settings.database_url)
    await relay.start()
    try:
        await eventually(lambda: taken == [0], what="the relay's first, empty round")
        for _ in range(10):  # ten captures, each committed on its own
            await add_rows(pool, captured())

        await eventually(lambda: sum(taken) == 10, what="the ten rows taken")
    finally:
        await relay.stop()
        await hub.stop()
    assert taken == [0, 10] and await depth(settings) == 10
