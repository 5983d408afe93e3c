"""Signed media links (A9): open without a header, one file each, and stop when they should.

The links are the ones the API hands out in an item answer; they are opened with no
Authorization header, as a <video src>, VLC or a Telegram message would open them.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from prsnl_common.settings import CommonSettings
from prsnl_ingest import catalog
from prsnl_ingest.catalog import KEY_ID_LENGTH, hash_key
from tests.hostile.conftest import AnyClient, ReadyItem, drain_namespace, make_ready_item
from tests.support.waiting import eventually


def _local(url: str) -> str:
    """The path and query of an absolute link (the test client has no network)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def _links(client: AnyClient, item_id: uuid.UUID, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    response = await client.get(f"/api/v1/items/{item_id}", headers=headers)
    assert response.status_code == 200, response.text
    links: dict = response.json()["links"]  # type: ignore[type-arg]
    return links


async def _code(client: AnyClient, url: str, status: int) -> str:
    response = await client.get(url)
    assert response.status_code == status, response.text[:300]
    return str(response.json()["code"])


async def test_the_links_of_an_answer_open_without_a_header(
    client: AnyClient, ready_item: ReadyItem
) -> None:
    links = await _links(client, ready_item.id, ready_item.headers)
    assert links["video"].startswith("http") and "sig=" in links["video"]
    assert links["expires_at"]
    video = _local(links["video"])
    whole = await client.get(video)
    assert whole.status_code == 200
    assert whole.content == ready_item.video.read_bytes()
    part = await client.get(video, headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == ready_item.video.read_bytes()[10:100]
    head = await client.head(video)
    assert head.status_code == 200 and head.headers["accept-ranges"] == "bytes"
    thumb = await client.get(_local(links["thumbnails"]["320"]))
    assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8")
    assert (await client.get(f"/api/v1/items/{ready_item.id}/video")).status_code == 401


async def test_a_signature_covers_exactly_one_file(
    client: AnyClient, ready_item: ReadyItem, pool: asyncpg.Pool, hostile_env: CommonSettings
) -> None:
    links = await _links(client, ready_item.id, ready_item.headers)
    video_query = urlsplit(links["video"]).query
    thumb_path = urlsplit(links["thumbnails"]["320"]).path
    assert await _code(client, f"{thumb_path}?{video_query}", 403) == "link_invalid"
    other_id, _ = await make_ready_item(
        pool, hostile_env.media_root, ready_item.owner_id, f"other-{uuid.uuid4().hex[:6]}"
    )
    other = f"/api/v1/items/{other_id}/video?{video_query}"
    assert await _code(client, other, 403) == "link_invalid", "another item of the same owner"
    query = parse_qs(video_query)
    path = urlsplit(links["video"]).path
    forged = {
        "sig": f"exp={query['exp'][0]}&kid={query['kid'][0]}&sig={'A' * 32}",
        "exp": f"exp={int(query['exp'][0]) + 3600}&kid={query['kid'][0]}&sig={query['sig'][0]}",
        "kid": f"exp={query['exp'][0]}&kid={'0' * KEY_ID_LENGTH}&sig={query['sig'][0]}",
        "junk": "exp=soon&kid=%00&sig=x",
    }
    for what, bad in forged.items():
        response = await client.get(f"{path}?{bad}")
        assert response.status_code == 403, (what, response.text)
        assert response.json()["code"] == "link_invalid", what


async def test_an_expired_link_says_so(
    client: AnyClient, ready_item: ReadyItem, pool: asyncpg.Pool
) -> None:
    signer = client.app.state.gateway.signer
    row = await catalog.get_item(pool, ready_item.owner_id, ready_item.id)
    key_id = hash_key(ready_item.headers["Authorization"].split()[1]).hex()[:KEY_ID_LENGTH]
    old = signer.sign(row["video_key"], ready_item.owner_id, key_id, time.time() - 10 * 86400)
    url = f"/api/v1/items/{ready_item.id}/video?{old.query()}"
    assert await _code(client, url, 403) == "link_expired"


async def test_links_stop_when_the_key_is_revoked_or_the_item_deleted(
    client: AnyClient, ready_item: ReadyItem, pool: asyncpg.Pool, hostile_env: CommonSettings
) -> None:
    name = await pool.fetchval("SELECT name FROM owners WHERE id = $1", ready_item.owner_id)
    _, key = await catalog.create_owner_key(pool, name, "revoked soon")
    headers = {"Authorization": f"Bearer {key}"}
    item_id, _ = await make_ready_item(
        pool, hostile_env.media_root, ready_item.owner_id, f"gone-{uuid.uuid4().hex[:6]}"
    )
    video = _local((await _links(client, item_id, headers))["video"])
    kept = _local((await _links(client, item_id, ready_item.headers))["video"])
    assert (await client.get(video)).status_code == 200
    await catalog.revoke_key(pool, key)

    async def refused() -> bool:
        return (await client.get(video)).status_code == 403

    await eventually(refused, within=10, what="the revoked key's link refused")
    assert await _code(client, video, 403) == "link_invalid"
    assert (await client.get(kept)).status_code == 200, "another key's link still opens"
    deleted = await client.delete(f"/api/v1/items/{item_id}", headers=ready_item.headers)
    assert deleted.status_code == 204
    assert await _code(client, kept, 404) == "not_found"
    await drain_namespace(pool, hostile_env.namespace)


@pytest.mark.parametrize("route", ["video", "thumbnails/320"])
async def test_bearer_access_to_the_bare_path_still_works(
    client: AnyClient, ready_item: ReadyItem, route: str
) -> None:
    response = await client.get(
        f"/api/v1/items/{ready_item.id}/{route}", headers=ready_item.headers
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "original",
    [
        None,
        "",
        "garbage",
        "/api/v1/items/------------------------------------/video?exp=1&kid=a1b2c3d4e5f6&sig="
        + "A" * 32,
        "/api/v1/items/00000000-0000-0000-0000-000000000000/video?exp=1&kid=a1b2c3d4e5f6&sig="
        + "A" * 32,
        "/api/v1/items/00000000-0000-0000-0000-000000000000/video",
        "/api/v1/items/x/video?" + "&".join(f"p{i}=1" for i in range(5000)),
        "/api/v1/items/00000000-0000-0000-0000-000000000000/thumbnails/99999999999?sig=%00",
    ],
)
async def test_the_media_authorisation_refuses_anything_but_a_valid_link(
    client: AnyClient, original: str | None
) -> None:
    headers = {} if original is None else {"X-Original-URI": original}
    response = await client.get("/_internal/media-authorization", headers=headers)
    assert response.status_code == 403 and "x-media-key" not in response.headers


async def test_the_media_authorisation_names_the_file_of_a_valid_link(
    client: AnyClient, ready_item: ReadyItem
) -> None:
    links = await _links(client, ready_item.id, ready_item.headers)
    for link, name in (
        (links["video"], "video.mp4"),
        (links["thumbnails"]["320"], "thumb-320.jpg"),
    ):
        response = await client.get(
            "/_internal/media-authorization", headers={"X-Original-URI": _local(link)}
        )
        assert response.status_code == 200
        assert response.headers["x-media-key"] == f"items/{ready_item.id}/{name}"
