"""An allow-list rule with a port opens that port of the address and no other, at connect time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from prsnl_common.errors import PermanentError
from prsnl_common.netguard import parse_allow_rules
from prsnl_downloader.pool import DownloadPool
from prsnl_downloader.protocol import DownloadRequest
from tests.support.media_server import MediaServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def other_port_server(media_root: Path) -> Iterator[MediaServer]:
    """The same media on 127.0.0.1 but another port: a stand-in for PostgreSQL or RabbitMQ."""
    with MediaServer(media_root) as server:
        yield server


@pytest.fixture(scope="module")
async def one_port_pool(media_server: MediaServer) -> AsyncIterator[DownloadPool]:
    """A child whose allow-list opens only the media server's port of 127.0.0.1."""
    rules = parse_allow_rules(f"127.0.0.1:{media_server.port}")
    async with DownloadPool(1, allowlist=rules, job_timeout=60, stall_seconds=20) as pool:
        yield pool


def job(url: str, workdir: Path) -> DownloadRequest:
    return DownloadRequest(url=url, workdir=workdir, max_bytes=50 * 1024 * 1024, max_height=240)


async def test_the_allowed_port_downloads(
    one_port_pool: DownloadPool, media_server: MediaServer, canary: MediaServer, workdir: Path
) -> None:
    result = await one_port_pool.run(job(media_server.url("/files/clip.mp4"), workdir))
    assert result.size > 0


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "redirected"])
async def test_another_port_of_the_allowed_address_is_refused(
    one_port_pool: DownloadPool,
    media_server: MediaServer,
    other_port_server: MediaServer,
    canary: MediaServer,
    workdir: Path,
    direct: bool,
) -> None:
    target = other_port_server.url("/files/clip.mp4")
    url = target if direct else media_server.url(f"/redirect-to?url={target}")
    other_port_server.reset_counters()
    with pytest.raises(PermanentError) as failure:
        await one_port_pool.run(job(url, workdir))
    assert failure.value.code == "blocked_address", failure.value
    assert f"port {other_port_server.port}" in failure.value.message
    assert other_port_server.requests == []


async def test_a_redirect_to_another_address_is_refused(
    one_port_pool: DownloadPool, media_server: MediaServer, canary: MediaServer, workdir: Path
) -> None:
    url = media_server.url(f"/redirect-to?url={canary.url('/files/clip.mp4')}")
    with pytest.raises(PermanentError) as failure:
        await one_port_pool.run(job(url, workdir))
    assert failure.value.code == "blocked_address"
