"""The stage's own checks and its progress publisher, without a broker or yt-dlp."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from prsnl_common.errors import PermanentError
from prsnl_common.events import Event, UrlCaptured, VideoDownloadProgress
from prsnl_common.netguard import parse_allow_rules
from prsnl_downloader.protocol import DownloadProgress
from prsnl_downloader.service import ProgressPublisher, validate_source


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "http://93.184.215.14/v.mp4",
        "http://[2606:4700::1]/",
    ],
)
def test_public_links_pass(url: str) -> None:
    validate_source(url, ())


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "unsupported_scheme"),
        ("ftp://example.com/v.mp4", "unsupported_scheme"),
        ("http://user:pw@example.com/v.mp4", "credentials_in_url"),
        ("http://10.0.0.7/v.mp4", "blocked_address"),
        ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
        ("http://[::ffff:127.0.0.1]:8080/v.mp4", "blocked_address"),
    ],
)
def test_refused_links(url: str, code: str) -> None:
    with pytest.raises(PermanentError) as failure:
        validate_source(url, ())
    assert failure.value.code == code


def test_the_allow_list_opens_a_private_address() -> None:
    validate_source("http://127.0.0.1:8000/v.mp4", parse_allow_rules("127.0.0.1/32"))


def captured() -> UrlCaptured:
    return UrlCaptured(
        item_id=uuid.uuid4(),
        run=3,
        url="https://example.com/v.mp4",
        normalized_url="https://example.com/v.mp4",
        platform="direct",
        source="api",
        owner_id=uuid.uuid4(),
    )


async def test_progress_is_published_with_the_items_identity() -> None:
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    event = captured()
    progress = ProgressPublisher(publish, event)
    progress(DownloadProgress(10, 100, 5.0, 18.0))
    await progress.flush(1.0)
    [sent] = published
    assert isinstance(sent, VideoDownloadProgress)
    assert (sent.item_id, sent.run) == (event.item_id, 3)
    assert (sent.downloaded_bytes, sent.total_bytes, sent.speed, sent.eta) == (10, 100, 5.0, 18.0)


async def test_a_slow_broker_sees_only_the_newest_progress() -> None:
    published: list[int] = []
    gate = asyncio.Event()

    async def publish(event: Event) -> None:
        await gate.wait()
        assert isinstance(event, VideoDownloadProgress)
        published.append(event.downloaded_bytes)

    progress = ProgressPublisher(publish, captured())
    for downloaded in (1, 2, 3, 4):
        progress(DownloadProgress(downloaded))
        await asyncio.sleep(0)
    gate.set()
    await progress.flush(1.0)
    assert published == [1, 4]


async def test_a_failed_publish_is_logged_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def publish(event: Event) -> None:
        raise ConnectionError("broker gone")

    progress = ProgressPublisher(publish, captured())
    progress(DownloadProgress(1))
    await progress.flush(1.0)
    assert "could not publish download progress" in caplog.text


async def test_cancel_drops_what_is_pending() -> None:
    started = asyncio.Event()

    async def publish(event: Event) -> None:
        started.set()
        await asyncio.sleep(60)

    progress = ProgressPublisher(publish, captured())
    progress(DownloadProgress(1))
    await started.wait()
    progress.cancel()
    await progress.flush(0.1)
