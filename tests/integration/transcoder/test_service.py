"""The processing stage end to end in-process: real ffmpeg, a real media store, a fake publisher."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from prsnl_common.consumer import Job
from prsnl_common.errors import PermanentError, TransientError
from prsnl_common.events import (
    CaptureOptions,
    Event,
    TranscodeRequested,
    VideoDownloaded,
    VideoTranscoded,
    VideoTranscodeProgress,
)
from prsnl_common.store import LocalMediaStore, original_key
from prsnl_transcoder.service import process_video
from prsnl_transcoder.settings import TranscoderSettings
from tests.support.clips import make_clip, make_garbage, probe

pytestmark = pytest.mark.integration


class Published(list[Event]):
    async def __call__(self, event: Event) -> None:
        self.append(event)


def stored_original(store: LocalMediaStore, source: Path) -> tuple[uuid.UUID, str]:
    item_id = uuid.uuid4()
    key = original_key(item_id, source.suffix)
    scratch = store.scratch("fixture")
    copy = scratch / source.name
    copy.write_bytes(source.read_bytes())
    store.put_file(key, copy)
    store.discard_scratch("fixture")
    return item_id, key


async def run(store: LocalMediaStore, event: VideoDownloaded | TranscodeRequested) -> Published:
    published = Published()
    job = Job(event, attempt=1, max_attempts=3, publish=published)
    await process_video(
        event, job, store=store, settings=TranscoderSettings(progress_interval_seconds=0)
    )
    return published


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    make_clip(root / "h264.mp4", duration=2, width=640, height=360)
    make_clip(root / "vp9.webm", duration=2, width=640, height=360, vcodec="vp9", acodec="opus")
    make_clip(root / "h264.mkv", duration=2, width=640, height=360)
    make_garbage(root / "garbage.mp4")
    return root


async def test_playable_mp4_is_remuxed_and_published(tmp_path: Path, sources: Path) -> None:
    store = LocalMediaStore(tmp_path)
    item_id, key = stored_original(store, sources / "h264.mp4")
    published = await run(store, VideoDownloaded(item_id=item_id, original_key=key, size=1))
    done = published[-1]
    assert isinstance(done, VideoTranscoded)
    assert done.action in ("copied", "remuxed")
    assert done.video_key == f"items/{item_id}/video.mp4"
    assert sorted(done.thumbnail_keys) == [320, 640, 1280]
    assert (done.metadata.width, done.metadata.height, done.metadata.video_codec) == (
        640,
        360,
        "h264",
    )
    assert all(store.exists(k) for k in [done.video_key, *done.thumbnail_keys.values()])
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_h264_aac_in_matroska_is_remuxed_into_mp4(tmp_path: Path, sources: Path) -> None:
    store = LocalMediaStore(tmp_path)
    item_id, key = stored_original(store, sources / "h264.mkv")
    published = await run(store, VideoDownloaded(item_id=item_id, original_key=key, size=1))
    done = published[-1]
    assert isinstance(done, VideoTranscoded) and done.action == "remuxed"
    assert done.metadata.container == "mp4"
    output = probe(store.path(done.video_key))
    assert sorted(s["codec_name"] for s in output["streams"]) == ["aac", "h264"]
    assert "mp4" in output["format"]["format_name"]


async def test_vp9_is_transcoded_with_progress(tmp_path: Path, sources: Path) -> None:
    store = LocalMediaStore(tmp_path)
    item_id, key = stored_original(store, sources / "vp9.webm")
    published = await run(store, VideoDownloaded(item_id=item_id, original_key=key, size=1))
    progress = [e.fraction for e in published if isinstance(e, VideoTranscodeProgress)]
    assert progress and progress[-1] == 1.0
    done = published[-1]
    assert isinstance(done, VideoTranscoded) and done.action == "transcoded"
    streams = probe(store.path(done.video_key))["streams"]
    assert sorted(s["codec_name"] for s in streams) == ["aac", "h264"]


async def test_capture_options_bound_the_output(tmp_path: Path, sources: Path) -> None:
    store = LocalMediaStore(tmp_path)
    item_id, key = stored_original(store, sources / "h264.mp4")
    capped = await run(
        store,
        VideoDownloaded(
            item_id=item_id, original_key=key, size=1, options=CaptureOptions(max_height=240)
        ),
    )
    assert capped[-1].metadata.height == 240  # type: ignore[attr-defined]
    item_id, key = stored_original(store, sources / "h264.mp4")
    audio = await run(
        store,
        VideoDownloaded(
            item_id=item_id, original_key=key, size=1, options=CaptureOptions(audio_only=True)
        ),
    )
    done = audio[-1]
    assert isinstance(done, VideoTranscoded)
    assert done.metadata.video_codec is None and done.metadata.audio_codec == "aac"


async def test_profile_request_writes_its_own_key(tmp_path: Path, sources: Path) -> None:
    store = LocalMediaStore(tmp_path)
    item_id, key = stored_original(store, sources / "h264.mp4")
    published = await run(
        store, TranscodeRequested(item_id=item_id, original_key=key, profile="480p")
    )
    done = published[-1]
    assert isinstance(done, VideoTranscoded)
    assert done.profile == "480p" and done.video_key == f"items/{item_id}/video-480p.mp4"
    # Never upscaled: a 360p source stays 360p under a 480p cap.
    assert done.metadata.height == 360


@pytest.mark.parametrize(
    ("name", "code"), [("garbage.mp4", "invalid_media"), (None, "source_missing")]
)
async def test_bad_input_fails_with_a_code_and_leaves_nothing(
    tmp_path: Path, sources: Path, name: str | None, code: str
) -> None:
    store = LocalMediaStore(tmp_path)
    if name:
        item_id, key = stored_original(store, sources / name)
    else:
        item_id, key = uuid.uuid4(), "items/missing/original.mp4"
    with pytest.raises(PermanentError) as error:
        await run(store, VideoDownloaded(item_id=item_id, original_key=key, size=1))
    assert error.value.code == code
    leftovers = [p.name for p in (tmp_path / "items" / str(item_id)).glob("*")]
    assert leftovers == (["original.mp4"] if name else [])
    assert list((tmp_path / "tmp").iterdir()) == []


class _DiskFreedAfter(LocalMediaStore):
    """A media store whose disk reports nearly full for the first ``low`` looks."""

    def __init__(self, root: Path, low: int) -> None:
        super().__init__(root)
        self.looks = 0
        self.low = low

    def free_bytes(self) -> int:
        self.looks += 1
        return 0 if self.looks <= self.low else super().free_bytes()


async def test_a_delivered_job_waits_for_disk_and_then_runs(
    tmp_path: Path, sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("prsnl_common.diskguard.DISK_POLL_SECONDS", 0.01)
    store = _DiskFreedAfter(tmp_path, low=3)
    item_id, key = stored_original(store, sources / "h264.mp4")
    published = await run(store, VideoDownloaded(item_id=item_id, original_key=key, size=1))
    assert store.looks == 4  # three looks at a full disk, then it had room
    assert isinstance(published[-1], VideoTranscoded)


async def test_a_job_that_never_finds_disk_fails_transiently_and_leaves_nothing(
    tmp_path: Path, sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("prsnl_common.diskguard.DISK_POLL_SECONDS", 0.01)
    store = _DiskFreedAfter(tmp_path, low=10**9)
    item_id, key = stored_original(store, sources / "h264.mp4")
    event = VideoDownloaded(item_id=item_id, original_key=key, size=1)
    published = Published()
    settings = TranscoderSettings(min_free_disk_mb=1, disk_wait_seconds=0.1)
    with pytest.raises(TransientError) as failure:
        await process_video(event, Job(event, 1, 3, published), store=store, settings=settings)
    assert failure.value.code == "insufficient_disk"
    assert "processing jobs wait" in failure.value.message
    assert published == []
    assert [p.name for p in (tmp_path / "items" / str(item_id)).iterdir()] == [Path(key).name]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_disk_wait_gets_what_the_job_limit_leaves_of_the_consumer_timeout() -> None:
    # 1800 s consumer timeout - 30 s to store and publish - the job's own limit.
    assert TranscoderSettings(job_timeout_seconds=1500).disk_wait_limit_seconds == 270
    assert TranscoderSettings(disk_wait_seconds=5).disk_wait_limit_seconds == 5
    assert TranscoderSettings(job_timeout_seconds=1799).disk_wait_limit_seconds == 1
