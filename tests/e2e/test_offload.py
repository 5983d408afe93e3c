"""Streaming offloaded to nginx: the gateway authorises, nginx serves the bytes (A4)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from bench.nginx import Nginx, running_nginx
from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack, free_port
from tests.support.waiting import eventually

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
            "PRSNL_INGEST_METRICS_ON_API_PORT": "true",
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


def _authorizations(gateway: str) -> float:
    text = httpx.get(f"{gateway}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prsnl_media_authorizations_total{")
    )


def _revoke(stack: Stack, key: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "prsnl_ingest", "revoke-key", key],
        env=stack.env,
        capture_output=True,
        check=True,
    )


def _get(url: str, **headers: str) -> httpx.Response:
    """A plain GET without an Authorization header, as a player sends it."""
    return httpx.get(url, headers=headers, timeout=30)


async def test_nginx_serves_every_range_of_a_signed_link_after_one_authorisation(
    stack: Stack, media: MediaServer, front: Nginx, offloading_gateway: str
) -> None:
    key = stack.create_key("carol")
    carol = Api(front.base_url, key)
    item = carol.wait_for(carol.capture(media.url("/files/small.mp4?signed=1")).json()["id"])
    links = carol.item(item["id"])["links"]
    assert links["video"].startswith(front.base_url), "links name the address nginx answers on"
    whole = _get(links["video"])
    assert whole.status_code == 200 and whole.headers["server"].startswith("nginx")
    before = _authorizations(offloading_gateway)
    size = len(whole.content)
    for start in range(0, size - 1000, max(1, size // 20)):
        part = _get(links["video"], Range=f"bytes={start}-{start + 999}")
        assert part.status_code == 206 and part.content == whole.content[start : start + 1000]
    asked = _authorizations(offloading_gateway) - before
    assert asked <= 5, f"{asked} authorisations for 20 ranges of one link: nginx did not cache"
    thumb = _get(links["thumbnails"]["320"])
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"

    forged = links["video"].rsplit("sig=", 1)[0] + "sig=" + "A" * 32
    refused = _get(forged)
    assert refused.status_code == 403 and refused.json()["code"] == "link_invalid"
    assert _get(f"{front.base_url}/_internal/media-authorization").status_code == 404

    _revoke(stack, key)

    async def link_refused() -> bool:
        return _get(links["video"]).status_code == 403

    # The cached authorisation lives 5 s; the gateway then refuses the revoked key's link.
    await eventually(link_refused, within=30, what="the revoked key's link refused via nginx")
