"""A consumer the broker cancels comes back, on a real RabbitMQ; readiness says when it is gone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest

from prsnl_common.broker import EventPublisher, Topology, create_broker
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.events import ItemDeleted
from prsnl_common.liveness import ConsumerWatch, is_consuming
from prsnl_common.observability import serve_metrics
from prsnl_common.settings import CommonSettings
from prsnl_common.worker import consumer_checks
from tests.support.stack import RABBITMQ_URL, free_port, remove_namespace
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
SERVICE = "storage-janitor"


@pytest.fixture
async def settings() -> AsyncIterator[CommonSettings]:
    common = CommonSettings(namespace=f"l{uuid.uuid4().hex[:10]}", rabbitmq_url=RABBITMQ_URL)
    yield common
    await remove_namespace(common.namespace)


async def delete_queue(name: str) -> None:
    """What a broker does to a consumer when its queue goes: a server-side cancel."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


async def test_a_cancelled_consumer_is_restored_and_the_process_is_not_ready_meanwhile(
    settings: CommonSettings,
) -> None:
    broker = create_broker(settings)
    topology = Topology(settings)
    handled: asyncio.Queue[uuid.UUID] = asyncio.Queue()

    async def handler(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
        await handled.put(event.item_id)

    subscribe_stage(
        broker, topology, service=SERVICE, stage="catalog", event_type=ItemDeleted, handler=handler
    )
    gave_up: list[bool] = []
    # Checked by hand below: the background round runs once at start, then sleeps.
    watch = ConsumerWatch(
        broker, SERVICE, interval=3600, give_up_after=0.5, give_up=lambda: gave_up.append(True)
    )
    port = free_port()
    assert serve_metrics(port, ready=lambda: consumer_checks(watch))
    await broker.connect()
    await topology.declare(service=SERVICE)
    await broker.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
            assert (await probe.get("/readyz")).status_code == 503  # not watching yet
            await watch.start()
            await until_ready(probe, expected=200)

            [subscriber] = broker.subscribers
            await cancel_behind_its_back(subscriber)
            assert not is_consuming(subscriber)

            restore = watch._restore
            watch._restore = refuse  # type: ignore[method-assign]
            await watch.check()
            assert watch.missing == [subscriber.queue.name]
            answer = await probe.get("/readyz")
            assert answer.status_code == 503
            assert subscriber.queue.name in answer.json()["checks"]["consumers"]
            await asyncio.sleep(0.6)  # past give_up_after, with restoring still failing
            await watch.check()
            assert gave_up == [True]

            watch._restore = restore  # type: ignore[method-assign]
            await watch.check()
            # Restored in place: queue declared and bound again, the consumer back.
            assert watch.missing == [] and is_consuming(subscriber)
            await until_ready(probe, expected=200)
            item = uuid.uuid4()
            await EventPublisher(broker, topology).publish(ItemDeleted(item_id=item))
            assert await asyncio.wait_for(handled.get(), 10) == item
    finally:
        await watch.stop()
        await broker.stop()


async def refuse(subscriber: object) -> bool:
    return False


async def cancel_behind_its_back(subscriber: Any) -> None:
    """The state a broker-side cancel leaves: the channel open, the consumer gone, and
    neither FastStream nor aio-pika aware of it."""
    raw_channel = subscriber._queue_obj.channel._channel.channel
    await raw_channel.basic_cancel(subscriber._consumer_tag)


async def test_a_consumer_whose_queue_was_deleted_comes_back(settings: CommonSettings) -> None:
    """The broker cancels the consumers of a deleted queue; the watch declares and binds it
    again and consumes from it (aio-pika may win the race when its channel reopens)."""
    broker = create_broker(settings)
    topology = Topology(settings)
    handled: asyncio.Queue[uuid.UUID] = asyncio.Queue()

    async def handler(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
        await handled.put(event.item_id)

    subscribe_stage(
        broker, topology, service=SERVICE, stage="catalog", event_type=ItemDeleted, handler=handler
    )
    watch = ConsumerWatch(broker, SERVICE, interval=3600, give_up=lambda: None)
    await broker.connect()
    await topology.declare(service=SERVICE)
    await broker.start()
    try:
        [subscriber] = broker.subscribers
        await delete_queue(topology.queue_name(SERVICE, ItemDeleted.routing_key))
        await eventually(lambda: not is_consuming(subscriber), 10, "the broker's cancel")

        async def back() -> bool:
            await watch.check()
            return watch.ready and is_consuming(subscriber)

        await eventually(back, 20, "the consumer back")
        item = uuid.uuid4()
        await EventPublisher(broker, topology).publish(ItemDeleted(item_id=item))
        assert await asyncio.wait_for(handled.get(), 10) == item
    finally:
        await broker.stop()


async def until_ready(probe: httpx.AsyncClient, expected: int, within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (await probe.get("/readyz")).status_code != expected:
        assert asyncio.get_running_loop().time() < deadline, f"/readyz never answered {expected}"
        await asyncio.sleep(0.05)
