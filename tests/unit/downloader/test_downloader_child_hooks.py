"""The child's yt-dlp hooks and helpers: byte cap, throttled progress, live refusal, info, files."""

from __future__ import annotations

from pathlib import Path

import pytest

from prsnl_common.errors import PermanentError, TransientError
from prsnl_downloader.protocol import (
    DownloadFailure,
    DownloadProgress,
    bytes_on_disk,
    final_outputs,
    format_bytes,
    output_template,
    remove_download_files,
)
from prsnl_downloader.ytdlp_child import (
    ESTIMATE_TOLERANCE,
    ByteCapExceeded,
    LiveFilter,
    ProgressTracker,
    source_info,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tracker(cap: int = 1000, interval: float = 1.0) -> tuple[ProgressTracker, list[object], Clock]:
    sent: list[object] = []
    clock = Clock()
    return ProgressTracker(cap, interval, sent.append, clock), sent, clock


def status(
    downloaded: int, state: str = "downloading", name: str = "original.mp4", **extra: object
):
    return {"status": state, "downloaded_bytes": downloaded, "filename": name, **extra}


def test_reports_are_throttled_but_the_finish_always_goes_out() -> None:
    hook, sent, clock = tracker(cap=10_000, interval=1.0)
    hook(status(100, total_bytes=500, speed=50.0, eta=8))
    clock.now = 0.5
    hook(status(200, total_bytes=500))
    clock.now = 1.0
    hook(status(300, total_bytes=500))
    clock.now = 1.1
    hook(status(500, "finished", total_bytes=500))
    assert sent == [
        DownloadProgress(100, 500, 50.0, 8.0),
        DownloadProgress(300, 500, None, None),
        DownloadProgress(500, 500, None, None),
    ]


def test_bytes_add_up_across_the_files_of_a_merge() -> None:
    hook, sent, _ = tracker(cap=10_000, interval=0)
    hook(status(600, "finished", name="original.f137.mp4", total_bytes=600))
    hook(status(150, name="original.f140.m4a", total_bytes=200))
    assert sent[-1] == DownloadProgress(750, 800, None, None)


def test_the_cap_holds_without_any_announced_size() -> None:
    hook, _, _ = tracker(cap=1000)
    hook(status(1000))
    with pytest.raises(ByteCapExceeded, match="passed the size limit"):
        hook(status(1001))


def test_an_announced_size_over_the_cap_stops_at_the_first_block() -> None:
    hook, sent, _ = tracker(cap=1000)
    with pytest.raises(ByteCapExceeded, match="announces"):
        hook(status(100, total_bytes=5000))
    assert sent == []


def test_the_cap_counts_every_file_of_the_job() -> None:
    hook, _, _ = tracker(cap=1000)
    hook(status(700, "finished", name="original.f137.mp4", total_bytes=700))
    with pytest.raises(ByteCapExceeded):
        hook(status(10, name="original.f140.m4a", total_bytes=400))


def test_an_estimate_refuses_only_well_over_the_cap() -> None:
    hook, _, _ = tracker(cap=1000)
    hook(status(100, total_bytes_estimate=int(1000 * ESTIMATE_TOLERANCE)))
    with pytest.raises(ByteCapExceeded, match="estimated"):
        hook(status(200, total_bytes_estimate=int(1000 * ESTIMATE_TOLERANCE) + 1))


def test_other_statuses_are_ignored() -> None:
    hook, sent, _ = tracker(cap=10)
    hook({"status": "error", "downloaded_bytes": 10_000})
    assert sent == []


def test_live_and_upcoming_streams_are_refused() -> None:
    live = LiveFilter()
    assert live({"id": "a", "live_status": "not_live"}) is None
    assert live({"id": "b", "was_live": True, "live_status": "was_live"}) is None
    assert not live.refused
    assert live({"id": "c", "is_live": True}, incomplete=True) is not None
    assert live.refused
    assert LiveFilter()({"live_status": "is_upcoming"}) is not None


def test_source_info_keeps_what_the_catalog_needs() -> None:
    info = source_info(
        {
            "id": "dQw4w9WgXcQ",
            "title": "A title",
            "channel": "A channel",
            "duration": 212,
            "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "extractor_key": "Youtube",
            "extractor": "youtube",
            "upload_date": "20091025",
            "description": "d" * 10_000,
            "formats": [{"format_id": "18"}],
        }
    )
    assert info.title == "A title"
    assert info.uploader == "A channel"
    assert info.duration == 212.0
    assert info.extractor == "Youtube"
    assert info.upload_date == "20091025"
    assert info.platform_video_id == "dQw4w9WgXcQ"
    assert info.description is not None and len(info.description) == 5000


def test_source_info_of_a_bare_direct_link() -> None:
    info = source_info({"id": "clip", "title": "clip", "extractor": "generic", "duration": None})
    assert (info.title, info.extractor, info.duration, info.uploader) == (
        "clip",
        "generic",
        None,
        None,
    )


def test_format_bytes() -> None:
    assert format_bytes(12) == "12 bytes"
    assert format_bytes(300 * 1024) == "300 KiB"
    assert format_bytes(3 * 1024 * 1024 // 2) == "1.5 MiB"


def test_final_outputs_skip_yt_dlps_working_files(tmp_path: Path) -> None:
    for name in (
        "original.mp4",
        "original.mp4.part",
        "original.mp4.ytdl",
        "original.mp4.part-Frag3.part",
        "original.f137.mp4",
        "original.temp.mp4",
        "original.part",
        "cookies.txt",
    ):
        (tmp_path / name).write_bytes(b"12345")
    assert final_outputs(tmp_path) == [tmp_path / "original.mp4"]
    assert bytes_on_disk(tmp_path) == 5 * 7
    remove_download_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["cookies.txt"]


def test_output_template_is_fixed_by_the_server(tmp_path: Path) -> None:
    assert output_template(tmp_path) == f"{tmp_path}/original.%(ext)s"


def test_failures_rebuild_their_error_type() -> None:
    permanent = DownloadFailure.of(PermanentError("too_large", "big"))
    transient = DownloadFailure.of(TransientError("network_error", "reset"), ("a warning",))
    assert isinstance(permanent.error(), PermanentError)
    assert permanent.error().code == "too_large"
    assert isinstance(transient.error(), TransientError)
    assert transient.warnings == ("a warning",)
