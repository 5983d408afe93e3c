"""The downloader's wiring on a real RabbitMQ: its concurrency is real, per process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from prsnl_common.broker import EventPublisher, Topology, create_broker
from prsnl_common.events import ItemDeleted, UrlCaptured, VideoDownloaded, VideoDownloadProgress
from prsnl_common.settings import CommonSettings
from prsnl_downloader.app import make_setup
from prsnl_downloader.settings import DownloaderSettings
from tests.support.media_server import MediaServer
from tests.support.stack import RABBITMQ_URL, remove_namespace
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class Seen:
    """What the test's subscriber heard, with a way to wait for a condition."""

    def __init__(self) -> None:
        self.downloaded: list[uuid.UUID] = []
        self.progress: list[uuid.UUID] = []
        self.changed = asyncio.Condition()

    async def add(self, into: list[uuid.UUID], item_id: uuid.UUID) -> None:
        async with self.changed:
            into.append(item_id)
            self.changed.notify_all()

    async def until(self, check, within: float = 60.0) -> None:  # type: ignore[no-untyped-def]
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(check), within)


@pytest.fixture
async def common(tmp_path: Path) -> AsyncIterator[CommonSettings]:
    settings = CommonSettings(
        namespace=f"w{uuid.uuid4().hex[:10]}",
        rabbitmq_url=RABBITMQ_URL,
        media_root=tmp_path / "media",
        ssrf_allowlist="127.0.0.1/32",
    )
    yield settings
    await remove_namespace(settings.namespace)


@pytest.fixture
async def worker(common: CommonSettings) -> AsyncIterator[tuple[EventPublisher, Seen]]:
    """A downloader with two jobs at once, and a subscriber that records what it publishes."""
    settings = DownloaderSettings(concurrency=2, min_free_disk_mb=0, progress_interval_seconds=0.1)
    broker = create_broker(common)
    topology = Topology(common)
    seen = Seen()

    @broker.subscriber(topology.stage_queue("ingest", VideoDownloaded), topology.events)
    async def on_downloaded(event: VideoDownloaded) -> None:
        await seen.add(seen.downloaded, event.item_id)

    @broker.subscriber(topology.stage_queue("ingest", VideoDownloadProgress), topology.events)
    async def on_progress(event: VideoDownloadProgress) -> None:
        await seen.add(seen.progress, event.item_id)

    async with make_setup(settings)(broker, topology):
        await broker.connect()
        await topology.declare(service="downloader")
        await broker.start()
        try:
            yield EventPublisher(broker, topology), seen
        finally:
            await broker.stop()


def captured(url: str) -> UrlCaptured:
    return UrlCaptured(
        item_id=uuid.uuid4(),
        url=url,
        normalized_url=url,
        platform="direct",
        source="api",
        owner_id=uuid.uuid4(),
    )


async def test_an_ordinary_clip_finishes_while_a_slow_one_is_still_downloading(
    worker: tuple[EventPublisher, Seen], media_server: MediaServer
) -> None:
    publisher, seen = worker
    # The 2 s test clip at 16 KiB/s takes several seconds to arrive.
    slow = captured(media_server.url("/slow/clip.mp4?rate=16384"))
    fast = captured(media_server.url("/files/clip.mp4"))
    await publisher.publish(slow)
    await seen.until(lambda: slow.item_id in seen.progress)
    await publisher.publish(fast)
    await seen.until(lambda: fast.item_id in seen.downloaded)
    assert slow.item_id not in seen.downloaded, "the slow download is still running"
    await seen.until(lambda: slow.item_id in seen.downloaded)


async def test_a_delete_stops_the_download_in_flight_and_later_deliveries_touch_nothing(
    worker: tuple[EventPublisher, Seen], media_server: MediaServer, common: CommonSettings
) -> None:
    publisher, seen = worker
    doomed = captured(media_server.url("/slow/clip.mp4?rate=16384&doomed=1"))
    await publisher.publish(doomed)
    await seen.until(lambda: doomed.item_id in seen.progress)
    await publisher.publish(ItemDeleted(item_id=doomed.item_id))
    scratch = common.media_root / "tmp"

    def stopped() -> bool:
        return not any(str(doomed.item_id) in p.name for p in scratch.iterdir())

    await eventually(stopped)
    # A redelivery (a retry, a replay) for the deleted item never reaches the source.
    media_server.reset_counters()
    await publisher.publish(doomed)
    ordinary = captured(media_server.url("/files/clip.mp4?after-delete=1"))
    await publisher.publish(ordinary)
    await seen.until(lambda: ordinary.item_id in seen.downloaded)
    assert doomed.item_id not in seen.downloaded
    assert not [r for r in media_server.requests if "doomed" in r.path]
    assert not (common.media_root / "items" / str(doomed.item_id)).exists()
