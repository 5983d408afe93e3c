"""Group 7: hostile sources met at download time, through the real pipeline (every service
as its own process, allow-list 127.0.0.1:<media port> only): the item ends failed with the
right code and nothing else is left behind, and nothing reaches 127.0.0.2."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from prsnl_common.db import create_pool
from tests.hostile.conftest import Deployment, LeftBehind
from tests.support.clips import make_clip
from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("canary")]


@pytest.fixture(scope="session")
def hostile_media(
    tmp_path_factory: pytest.TempPathFactory, canary_server: MediaServer
) -> Iterator[MediaServer]:
    root = tmp_path_factory.mktemp("hostile-sources")
    make_clip(root / "clip.mp4", duration=2, width=320, height=240, fps=10)
    (root / "empty.mp4").write_bytes(b"")
    hls = root / "evil"
    hls.mkdir()
    canary = f"http://127.0.0.2:{canary_server.port}"
    (hls / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\n{canary}/files/clip.mp4\n#EXTINF:2.0,\n{canary}/files/clip.mp4\n"
        "#EXT-X-ENDLIST\n"
    )
    # Playlists disguised as video files, whose entries point at a local file and the canary.
    (root / "concat.mp4").write_text(
        f"ffconcat version 1.0\nfile 'file:/etc/passwd'\nfile '{canary}/files/clip.mp4'\n"
    )
    (root / "playlist.mp4").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile:///etc/passwd\n"
        f"#EXTINF:2.0,\n{canary}/files/clip.mp4\n#EXT-X-ENDLIST\n"
    )
    with MediaServer(root) as server:
        yield server


@pytest.fixture(scope="session")
def hostile_stack(
    tmp_path_factory: pytest.TempPathFactory, hostile_media: MediaServer
) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("hostile-stack"),
        downloaders=1,
        PRSNL_SSRF_ALLOWLIST=f"127.0.0.1:{hostile_media.port}",
        PRSNL_RETRY_DELAYS="1.5,1.5",
        PRSNL_MAX_ATTEMPTS="3",
        PRSNL_DOWNLOADER_STALL_SECONDS="10",
        PRSNL_JANITOR_SWEEP_INTERVAL_SECONDS="5",
    ) as running:
        yield running


@pytest.fixture(scope="session")
def api(hostile_stack: Stack) -> Api:
    return hostile_stack.client(hostile_stack.create_key("hostile"))


@pytest.fixture
def deployment(hostile_stack: Stack) -> Deployment:
    return Deployment(hostile_stack.database_url, hostile_stack.namespace, hostile_stack.media_root)


@pytest.fixture(scope="session")
async def stack_pool(hostile_stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(hostile_stack.database_url, max_size=2)
    yield created
    await created.close()


@pytest.fixture
def deployment_pool(stack_pool: asyncpg.Pool) -> asyncpg.Pool:
    return stack_pool


async def _capture_and_fail(api: Api, url: str, within: float = 30) -> dict[str, Any]:
    response = await asyncio.to_thread(api.capture, url)
    assert response.status_code == 202, response.text
    item_id = response.json()["id"]
    return await asyncio.to_thread(api.wait_for, item_id, ("ready", "failed"), within)


def _files_url(media: MediaServer, name: str) -> str:
    return f"{media.base_url}/files/{name}"


CASES = [
    # (name, url builder, final error code)
    (
        "redirect to 127.0.0.2",
        lambda m, c: (
            f"{m.base_url}/redirect-to?url="
            + quote(f"http://127.0.0.2:{c.port}/files/clip.mp4", safe="")
        ),
        "blocked_address",
    ),
    (
        "redirect to another port",
        lambda m, c: (
            f"{m.base_url}/redirect-to?url="
            + quote(f"http://127.0.0.1:{c.port}/files/clip.mp4", safe="")
        ),
        "blocked_address",
    ),
    (
        "HLS segments on 127.0.0.2",
        lambda m, c: f"{m.base_url}/hls/evil/index.m3u8",
        "blocked_address",
    ),
    ("empty body", lambda m, c: _files_url(m, "empty.mp4"), "empty_download"),
    ("ffconcat as mp4", lambda m, c: _files_url(m, "concat.mp4"), "invalid_media"),
    ("m3u8 as mp4", lambda m, c: _files_url(m, "playlist.mp4"), "invalid_media"),
]


@pytest.mark.parametrize(("name", "build", "code"), CASES, ids=[c[0] for c in CASES])
async def test_a_hostile_source_fails_its_item_with_a_code(
    api: Api,
    hostile_media: MediaServer,
    canary: MediaServer,
    nothing_left_behind: LeftBehind,
    name: str,
    build: Any,
    code: str,
) -> None:
    started = time.monotonic()
    item = await _capture_and_fail(api, build(hostile_media, canary))
    assert item["status"] == "failed", item
    assert item["error"]["code"] == code, item["error"]
    if code == "empty_download":
        assert time.monotonic() - started < 10, "an empty body is not worth retrying"
    await nothing_left_behind.assert_nothing_left(new_items=1, settle=1.0)


async def test_a_lying_content_length_shows_retry_info_then_fails(
    api: Api, hostile_media: MediaServer, nothing_left_behind: LeftBehind
) -> None:
    response = await asyncio.to_thread(
        api.capture, f"{hostile_media.base_url}/truncated-length/clip.mp4"
    )
    assert response.status_code == 202, response.text
    item_id = response.json()["id"]
    waiting = await asyncio.to_thread(
        api.wait_for,
        item_id,
        ("pending", "downloading", "failed"),
        30,
        lambda item: item.get("retry") is not None or item["status"] == "failed",
    )
    retry = waiting["retry"]
    assert retry is not None, f"no retry info while waiting: {waiting}"
    assert retry["attempt"] >= 1 and retry["max_attempts"] == 3
    assert retry["next_attempt_at"]
    item = await asyncio.to_thread(api.wait_for, item_id, ("ready", "failed"), 60)
    assert item["status"] == "failed" and item["retry"] is None
    assert item["error"]["code"] == "network_error", item["error"]
    # The exhausted message waits in the downloader's dead-letter queue for an operator.
    await nothing_left_behind.assert_nothing_left(
        new_items=1, settle=1.0, dead_letters={"downloader": 1}
    )
