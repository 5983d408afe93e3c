"""Fixtures of the downloader's integration tests: tiny clips on a loopback media server, a pool."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from prsnl_common.netguard import AllowRule, parse_allow_rules
from prsnl_downloader.pool import DownloadPool
from tests.support.clips import make_clip, make_hls
from tests.support.media_server import MediaServer

LOOPBACK_ONLY: tuple[AllowRule, ...] = parse_allow_rules("127.0.0.1/32")


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 320x240 H.264/AAC clip and a 3 s HLS stream of 1 s segments."""
    root = tmp_path_factory.mktemp("downloader-media")
    make_clip(root / "clip.mp4", duration=2, width=320, height=240, fps=15)
    (root / "empty.mp4").write_bytes(b"")
    make_hls(root / "show", duration=3, segment_seconds=1, width=320, height=240)
    return root


@pytest.fixture(scope="session")
def hls_path() -> str:
    """Server path of the HLS playlist in ``media_root``."""
    return "/hls/show/index.m3u8"


@pytest.fixture(scope="session")
def loopback_only() -> list[AllowRule]:
    """The allow-list of every pool here: the media server's address and nothing else."""
    return list(LOOPBACK_ONLY)


@pytest.fixture(scope="session")
def media_server(media_root: Path) -> Iterator[MediaServer]:
    with MediaServer(media_root) as server:
        yield server


@pytest.fixture(scope="session")
async def timed_pool() -> AsyncIterator[tuple[DownloadPool, float]]:
    """Two warm children that may reach 127.0.0.1 only, and how long starting them took."""
    started = time.monotonic()
    async with DownloadPool(
        2, allowlist=LOOPBACK_ONLY, job_timeout=60, stall_seconds=20
    ) as download_pool:
        yield download_pool, time.monotonic() - started


@pytest.fixture(scope="session")
def pool(timed_pool: tuple[DownloadPool, float]) -> DownloadPool:
    return timed_pool[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    directory = tmp_path / "work"
    directory.mkdir()
    return directory
