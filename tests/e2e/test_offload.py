"""Streaming offloaded to nginx: the gateway authorises, nginx serves the bytes (A4)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bench.nginx import Nginx, running_nginx
from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def offloading_gateway(stack: Stack) -> Iterator[str]:
    """A second gateway replica (same catalog) that answers files with X-Accel-Redirect."""
    port = free_port()
    stack.start(
        "ingest",
        extra_env={
            "PRSNL_INGEST_PORT": str(port),
            "PRSNL_INGEST_ACCEL_REDIRECT_PREFIX": "/_media/",
        },
    )
    replica = stack.processes["ingest"][-1]
    url = f"http://127.0.0.1:{port}"
    stack.wait_ready(base_url=url)
    yield url
    stack.processes["ingest"].remove(replica)
    replica.terminate()
    replica.wait(timeout=30)


@pytest.fixture(scope="module")
def front(stack: Stack, offloading_gateway: str) -> Iterator[Nginx]:
    with running_nginx(stack.media_root, upstream=offloading_gateway) as nginx:
        yield nginx


def test_nginx_serves_ranges_after_the_gateway_authorised_them(
    stack: Stack, alice: Api, bob: Api, media: MediaServer, front: Nginx, offloading_gateway: str
) -> None:
    response = alice.capture(media.url("/files/small.mp4?offload=1"))
    item = alice.wait_for(response.json()["id"])
    assert item["status"] == "ready"
    direct = alice.get(f"/api/v1/items/{item['id']}/video").content

    video = f"/api/v1/items/{item['id']}/video"
    key = f"items/{item['id']}/video.mp4"
    # The offloading gateway itself sends no bytes, only where nginx should find them.
    answer = Api(offloading_gateway, alice.key).get(video)
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["x-accel-redirect"] == f"/_media/{key}"

    through = Api(front.base_url, alice.key)
    full = through.get(video)
    assert full.status_code == 200 and full.content == direct
    assert full.headers["server"].startswith("nginx")
    assert full.headers["content-type"] == "video/mp4"
    stat = (stack.media_root / key).stat()
    assert full.headers["etag"] == f'"{int(stat.st_mtime):x}-{stat.st_size:x}"'  # nginx's own
    ranged = through.get(video, {"Range": "bytes=0-1"})
    assert ranged.status_code == 206 and ranged.content == direct[:2]
    assert ranged.headers["content-range"] == f"bytes 0-1/{len(direct)}"
    assert through.get(video, {"Range": f"bytes={len(direct)}-"}).status_code == 416
    thumb = through.get(f"/api/v1/items/{item['id']}/thumbnails/320")
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"

    # Authorisation stays with the gateway; the media location is not reachable directly.
    assert Api(front.base_url, bob.key).get(video).status_code == 404
    assert Api(front.base_url, "not-a-key").get(video).status_code == 401
    assert httpx.get(f"{front.base_url}/_media/{key}").status_code == 404
    # The rest of the API passes through unchanged.
    assert through.get(f"/api/v1/items/{item['id']}").json()["id"] == item["id"]
