"""Low disk on a real RabbitMQ: the worker takes no jobs, messages wait, it resumes by itself."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY

from prsnl_common.broker import EventPublisher, Topology, create_broker
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.diskguard import LowDiskPause
from prsnl_common.events import StageState, VideoDownloaded
from prsnl_common.liveness import ConsumerWatch
from prsnl_common.observability import serve_metrics
from prsnl_common.settings import CommonSettings
from prsnl_common.worker import consumer_checks
from tests.support.stack import RABBITMQ_URL, free_port, remove_namespace
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
SERVICE = "transcoder"
JOBS = 5


@pytest.fixture
async def settings(tmp_path: Path) -> AsyncIterator[CommonSettings]:
    common = CommonSettings(
        namespace=f"d{uuid.uuid4().hex[:10]}", rabbitmq_url=RABBITMQ_URL, media_root=tmp_path
    )
    yield common
    await remove_namespace(common.namespace)


async def ready_messages(names: list[str]) -> dict[str, int]:
    """Messages waiting (ready, not delivered) in each queue."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        counts = {}
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            counts[name] = queue.declaration_result.message_count or 0
        return counts


async def announced(topology: Topology) -> list[StageState]:
    """The stage states waiting in the gateway's queue, oldest first (taken off)."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    states = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.stage_state_queue().name, passive=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            states.append(StageState.model_validate_json(message.body))
    return states


def paused_gauge() -> float | None:
    return REGISTRY.get_sample_value("prsnl_low_disk_paused", {"service": SERVICE})


async def test_below_the_threshold_jobs_wait_in_the_queue_and_resume_when_it_is_lowered(
    settings: CommonSettings,
) -> None:
    broker = create_broker(settings)
    topology = Topology(settings)
    attempts: list[int] = []

    async def handler(event: VideoDownloaded, job: Job[VideoDownloaded]) -> None:
        attempts.append(job.attempt)

    subscribe_stage(
        broker,
        topology,
        service=SERVICE,
        stage="process",
        event_type=VideoDownloaded,
        handler=handler,
    )
    stage = topology.queue_name(SERVICE, VideoDownloaded.routing_key)
    threshold = [shutil.disk_usage(settings.media_root).free + 2**50]  # above the real free space
    watch = ConsumerWatch(broker, SERVICE, interval=0.2)
    pause = LowDiskPause(
        broker,
        watch,
        SERVICE,
        root=settings.media_root,
        min_free=lambda: threshold[0],
        queues={stage},
        interval=0.2,
        announce=lambda state: topology.publish_state(broker, state),
        announce_every=0,  # every round while paused
    )
    port = free_port()
    assert serve_metrics(port, ready=lambda: {**consumer_checks(watch), **pause.readiness()})
    await broker.connect()
    await topology.declare(service=SERVICE)
    await broker.start()
    await watch.start()
    await pause.start()
    try:
        await eventually(lambda: pause.paused, within=10, what="the worker paused")
        publish = EventPublisher(broker, topology)
        for _ in range(JOBS):
            await publish(
                VideoDownloaded(item_id=uuid.uuid4(), original_key="items/x/o.mp4", size=1)
            )

        async def all_waiting() -> bool:
            return (await ready_messages([stage]))[stage] == JOBS

        await eventually(all_waiting, within=10, what="every job waiting in its queue")
        for _ in range(3):  # rounds of both watchers change nothing while the disk is low
            await pause.check()
            await watch.check()
        assert await ready_messages([stage]) == {stage: JOBS}
        assert attempts == [] and watch.missing == [] and paused_gauge() == 1
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
            answer = await probe.get("/readyz")
            assert answer.status_code == 503
            assert "paused" in answer.json()["checks"]["disk"], answer.json()

            threshold[0] = 0  # space is back
            await eventually(lambda: len(attempts) == JOBS, within=20, what="every job taken")
            assert attempts == [1] * JOBS  # none failed, none retried
            assert (await probe.get("/readyz")).status_code == 200
        assert paused_gauge() == 0
        states = await announced(topology)
        # Paused, said again every round while paused, then running again.
        assert [st.paused for st in states][-1] is False
        assert sum(st.paused for st in states) >= 2 and states[0].paused
        assert {(st.service, st.instance) for st in states} == {(SERVICE, pause.instance)}
        assert states[0].min_free_bytes > states[0].free_bytes
        retry_queues = [topology.retry_queue_name(d) for d in settings.retry_delay_list]
        waiting = await ready_messages([stage, topology.dlq_name(SERVICE), *retry_queues])
        assert set(waiting.values()) == {0}, waiting
    finally:
        await pause.stop()
        await watch.stop()
        await broker.stop()
