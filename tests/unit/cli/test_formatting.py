"""How prsnl shows sizes, times, progress and items."""

from __future__ import annotations

import pytest
from rich.console import Console

from prsnl_cli.main import default_name
from prsnl_cli.render import (
    detail_rows,
    human_bytes,
    human_duration,
    items_table,
    label,
    update_text,
)

ITEM = {
    "id": "01a2b3c4-0000-7000-8000-000000000001",
    "status": "ready",
    "url": "https://example.com/v.mp4",
    "platform": "direct",
    "title": "A clip",
    "duration": 75.4,
    "size": 1_234_567,
    "video_codec": "h264",
    "width": 1280,
    "height": 720,
    "fps": 30.0,
    "created_at": "2026-12-02T10:00:00+00:00",
    "links": {"video": "https://m/v?exp=1&kid=a&sig=b", "expires_at": "2026-12-03T10:00:00Z"},
}


@pytest.mark.parametrize(
    ("count", "text"),
    [(None, "-"), (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_234_567, "1.2 MB")],
)
def test_human_bytes(count: int | None, text: str) -> None:
    assert human_bytes(count) == text


def test_human_bytes_of_petabytes_stays_in_terabytes() -> None:
    assert human_bytes(2 * 10**15) == "2000.0 TB"


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (0, "0:00"), (75.4, "1:15"), (3725, "1:02:05")]
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_updates_read_as_one_line() -> None:
    download = {
        "status": "downloading",
        "progress": {
            "stage": "download",
            "downloaded_bytes": 500_000,
            "total_bytes": 2_000_000,
            "speed": 250_000,
            "eta": 6,
            "fraction": 0.25,
        },
    }
    assert update_text("progress", download) == (
        "downloading 25% 500.0 kB / 2.0 MB, 250.0 kB/s, eta 0:06"
    )
    process = {
        "status": "ready",
        "progress": {"stage": "process", "fraction": None, "profile": "480p"},
    }
    assert update_text("progress", process) == "ready making 480p"
    processing = {"status": "processing", "progress": {"stage": "process", "fraction": 0.5}}
    assert update_text("progress", processing) == "processing 50%"
    assert update_text("progress", processing, percent=False) == "processing"
    assert update_text("created", {"status": "pending"}) == "pending (new)"
    failed = {"status": "failed", "error_code": "too_large", "message": "Over 150 MB"}
    assert update_text("status", failed) == "failed: too_large: Over 150 MB"
    retry = {
        "status": "downloading",
        "retry": {"attempt": 2, "max_attempts": 4, "error_code": "x", "message": "503"},
    }
    assert update_text("retry", retry) == "downloading, retry 2/4 after x: 503"
    item = {"status": "failed", "error": {"code": "invalid_media", "message": "no stream"}}
    assert update_text("item", item) == "failed: invalid_media: no stream"
    assert update_text("deleted", {}) == "deleted"


def test_labels_fall_back_to_the_link_and_are_cut() -> None:
    assert label({"url": "https://x/y"}) == "https://x/y"
    assert label({"title": "t" * 50}, width=10) == "t" * 9 + "…"


def test_the_table_and_details_show_the_facts() -> None:
    console = Console(width=200, record=True)
    console.print(items_table([ITEM]))
    text = console.export_text()
    assert ITEM["id"] in text and "ready" in text and "1:15" in text and "1.2 MB" in text
    rows = dict((name, str(value)) for name, value in detail_rows(ITEM))
    assert rows["video"] == "h264 1280x720 30 fps" and rows["size"] == "1.2 MB"
    assert rows["video link"] == ITEM["links"]["video"] and "links expire" in rows
    assert "error" not in rows and "waiting" not in rows


def test_details_say_why_a_pending_item_waits() -> None:
    waiting = {"reason": "low_disk", "stage": "downloader", "detail": "Downloads are paused."}
    rows = dict(detail_rows({**ITEM, "status": "pending", "waiting": waiting}))
    assert rows["waiting"] == "Downloads are paused."


def test_default_file_names_are_safe() -> None:
    assert default_name(ITEM) == "A-clip-01a2b3c4.mp4"
    assert default_name({**ITEM, "title": "../../etc/passwd"}) == "etc-passwd-01a2b3c4.mp4"
    assert default_name({**ITEM, "title": "日本"}) == f"{ITEM['id']}.mp4"
    assert default_name({**ITEM, "title": None}) == f"{ITEM['id']}.mp4"
