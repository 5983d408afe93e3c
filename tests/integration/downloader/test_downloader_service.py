"""download_video end to end without a broker: real pool and media store, collected publishes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from prsnl_common.consumer import Job
from prsnl_common.errors import PermanentError, TransientError
from prsnl_common.events import (
    CaptureOptions,
    Event,
    Platform,
    UrlCaptured,
    VideoDownloaded,
    VideoDownloadProgress,
)
from prsnl_common.settings import CommonSettings
from prsnl_common.store import LocalMediaStore
from prsnl_downloader.pool import DownloadPool
from prsnl_downloader.service import download_video
from prsnl_downloader.settings import DownloaderSettings
from tests.support.media_server import MediaServer

pytestmark = pytest.mark.integration


class Collector:
    """Stands in for the broker: records every event, optionally failing progress publishes."""

    def __init__(self, fail_progress: bool = False) -> None:
        self.events: list[Event] = []
        self.fail_progress = fail_progress

    async def __call__(self, event: Event) -> None:
        if self.fail_progress and isinstance(event, VideoDownloadProgress):
            raise ConnectionError("broker unreachable")
        self.events.append(event)

    def of_type(self, kind: type[Event]) -> list[Event]:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def store(tmp_path: Path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "media")


@pytest.fixture
def common(tmp_path: Path) -> CommonSettings:
    return CommonSettings(media_root=tmp_path / "media", ssrf_allowlist="127.0.0.1/32")


def settings(**changes: object) -> DownloaderSettings:
    fields: dict[str, object] = {"progress_interval_seconds": 0.05, "min_free_disk_mb": 0}
    fields.update(changes)
    return DownloaderSettings(**fields)  # type: ignore[arg-type]


def captured(url: str, platform: Platform = "direct", **options: object) -> UrlCaptured:
    return UrlCaptured(
        item_id=uuid.uuid4(),
        run=2,
        url=url,
        normalized_url=url,
        platform=platform,
        source="api",
        owner_id=uuid.uuid4(),
        options=CaptureOptions(**options),  # type: ignore[arg-type]
    )


def every_file(store: LocalMediaStore) -> list[str]:
    return sorted(path.relative_to(store.root).as_posix() for path in store.root.rglob("*"))


async def test_success_stores_the_original_and_publishes_progress_then_downloaded(
    pool: DownloadPool,
    media_server: MediaServer,
    media_root: Path,
    store: LocalMediaStore,
    common: CommonSettings,
) -> None:
    event = captured(media_server.url("/slow/clip.mp4?rate=327680"), max_height=360)
    publish = Collector()
    await download_video(
        event, Job(event, 1, 5, publish), pool=pool, store=store, settings=settings(), common=common
    )
    key = f"items/{event.item_id}/original.mp4"
    size = (media_root / "clip.mp4").stat().st_size
    assert store.exists(key)
    assert store.path(key).read_bytes() == (media_root / "clip.mp4").read_bytes()
    # Nothing else anywhere: the scratch directory is gone too.
    assert every_file(store) == ["items", f"items/{event.item_id}", key, "tmp"]

    progress = publish.of_type(VideoDownloadProgress)
    assert progress, "a half-second download reports progress"
    assert all(
        isinstance(p, VideoDownloadProgress) and p.item_id == event.item_id for p in progress
    )
    [done] = publish.of_type(VideoDownloaded)
    assert publish.events[-1] is done, "video.downloaded comes after every progress event"
    assert isinstance(done, VideoDownloaded)
    assert (done.item_id, done.run) == (event.item_id, 2)
    assert done.original_key == key
    assert done.size == size
    assert done.info.title == "clip"
    assert done.info.webpage_url == event.url
    assert done.options == CaptureOptions(max_height=360)


async def test_a_failing_progress_publish_never_fails_the_job(
    pool: DownloadPool,
    media_server: MediaServer,
    store: LocalMediaStore,
    common: CommonSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = captured(media_server.url("/slow/clip.mp4?rate=327680"))
    publish = Collector(fail_progress=True)
    await download_video(
        event, Job(event, 1, 5, publish), pool=pool, store=store, settings=settings(), common=common
    )
    assert [type(e) for e in publish.events] == [VideoDownloaded]
    assert "could not publish download progress" in caplog.text


async def test_a_permanent_failure_leaves_no_file_anywhere(
    pool: DownloadPool, media_server: MediaServer, store: LocalMediaStore, common: CommonSettings
) -> None:
    event = captured(media_server.url("/files/missing.mp4"))
    publish = Collector()
    with pytest.raises(PermanentError) as failure:
        await download_video(
            event,
            Job(event, 1, 5, publish),
            pool=pool,
            store=store,
            settings=settings(),
            common=common,
        )
    assert failure.value.code == "source_not_found"
    assert publish.of_type(VideoDownloaded) == []
    assert every_file(store) == ["items", "tmp"]


async def test_a_failure_mid_download_removes_the_partial_file(
    pool: DownloadPool, media_server: MediaServer, store: LocalMediaStore, common: CommonSettings
) -> None:
    # Half of the clip is written before the connection drops.
    event = captured(media_server.url("/truncated-length/clip.mp4"))
    with pytest.raises(TransientError) as failure:
        await download_video(
            event,
            Job(event, 1, 5, Collector()),
            pool=pool,
            store=store,
            settings=settings(),
            common=common,
        )
    assert failure.value.code == "network_error"
    assert every_file(store) == ["items", "tmp"]


async def test_too_little_free_disk_waits_without_touching_anything(
    pool: DownloadPool, media_server: MediaServer, store: LocalMediaStore, common: CommonSettings
) -> None:
    media_server.reset_counters()
    event = captured(media_server.url("/files/clip.mp4"))
    with pytest.raises(TransientError) as failure:
        await download_video(
            event,
            Job(event, 1, 5, Collector()),
            pool=pool,
            store=store,
            settings=settings(min_free_disk_mb=1024 * 1024 * 1024, disk_wait_seconds=1),
            common=common,
        )
    assert failure.value.code == "insufficient_disk"
    assert every_file(store) == ["items", "tmp"]
    assert media_server.requests == []


async def test_two_deliveries_of_one_message_never_share_or_wipe_a_scratch_folder(
    pool: DownloadPool,
    media_server: MediaServer,
    media_root: Path,
    store: LocalMediaStore,
    common: CommonSettings,
) -> None:
    """A redelivery while (or after) another delivery works: each has its own scratch.

    The other delivery's files are left alone (a crash's left-overs go with the
    janitor's scratch TTL), and both deliveries store the same original.
    """
    event = captured(media_server.url("/files/clip.mp4"))
    other = store.scratch(f"download-{event.item_id}-otherdelivery")
    (other / "original.mp4.part").write_bytes(b"\0" * 1000)
    (other / "original.webm").write_bytes(b"not the video")

    async def deliver() -> None:
        await download_video(
            event,
            Job(event, 2, 5, Collector()),
            pool=pool,
            store=store,
            settings=settings(),
            common=common,
        )

    await asyncio.gather(deliver(), deliver())
    key = f"items/{event.item_id}/original.mp4"
    assert store.path(key).read_bytes() == (media_root / "clip.mp4").read_bytes()
    assert sorted(p.name for p in other.iterdir()) == ["original.mp4.part", "original.webm"]
    scratch = [p.name for p in (store.root / "tmp").iterdir()]
    assert scratch == [other.name], "each delivery removed only its own scratch"
