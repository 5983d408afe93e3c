"""GET /api/v1/storage equals a count of the media tree; quotas refuse captures, with numbers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.events import UrlCaptured
from prsnl_common.settings import CommonSettings
from prsnl_ingest.catalog import create_owner_key
from prsnl_ingest.quotas import set_limits
from tests.support.catalog import fail_item, new_item

pytestmark = pytest.mark.integration
Client = AsyncTestClient  # type: ignore[type-arg]


def write(root: Path, key: str, size: int) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


def tree_count(root: Path, *, kind: str | None = None, under: str = "") -> tuple[int, int]:
    """(bytes, files) as du and find count them, optionally of one kind or one folder."""
    found = subprocess.run(
        ["find", str(root / under), "-type", "f", "-print0"], capture_output=True, check=True
    ).stdout.split(b"\0")
    paths = [Path(os.fsdecode(p)) for p in found if p]
    if kind is not None:
        paths = [p for p in paths if kind_by_name(root, p) == kind]
    if not paths:
        return 0, 0
    du = subprocess.run(
        ["du", "--files0-from=-", "-cb", "--apparent-size"],
        input=b"\0".join(os.fsencode(p) for p in paths),
        capture_output=True,
        check=True,
    )
    return int(du.stdout.decode().splitlines()[-1].split()[0]), len(paths)


def kind_by_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root).as_posix()
    if not relative.startswith("items/") or path.name.endswith(".part"):
        return "scratch"
    if path.name.startswith("thumb-"):
        return "thumbnails"
    return "originals" if path.name.startswith("original.") else "videos"


def counted(view: dict[str, int]) -> tuple[int, int]:
    return view["bytes"], view["files"]


@pytest.fixture
async def drained(gateway_env: CommonSettings) -> AsyncIterator[list[UrlCaptured]]:
    """The url.captured events this test caused, taken off the downloader's queue afterwards."""
    events: list[UrlCaptured] = []
    yield events
    connection = await aio_pika.connect(gateway_env.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"{gateway_env.namespace}.downloader.url-captured", passive=True
        )
        await queue.purge()


async def test_usage_equals_a_count_of_the_tree_by_kind_and_owner(
    client: Client, pool: asyncpg.Pool, gateway_env: CommonSettings
) -> None:
    root = gateway_env.media_root
    alice, alice_key = await create_owner_key(pool, f"alice-{uuid.uuid4().hex[:6]}")
    bob, _ = await create_owner_key(pool, f"bob-{uuid.uuid4().hex[:6]}")
    _, admin_key = await create_owner_key(pool, f"ops-{uuid.uuid4().hex[:6]}", role="admin")
    alice_item = await new_item(pool, alice, f"https://example.com/{uuid.uuid4().hex}.mp4")
    bob_item = await new_item(pool, bob, f"https://example.com/{uuid.uuid4().hex}.mp4")
    write(root, f"items/{alice_item}/original.webm", 4000)
    write(root, f"items/{alice_item}/video.mp4", 2500)
    write(root, f"items/{alice_item}/thumb-320.jpg", 120)
    write(root, f"items/{alice_item}/thumb-640.jpg", 240)
    write(root, f"items/{bob_item}/video-480p.mp4", 3000)
    write(root, f"items/{bob_item}/.video.mp4.0123abcd.part", 77)
    write(root, f"items/{uuid.uuid4()}/original.mp4", 55)  # no catalog row
    write(root, "tmp/download-job/original.mp4.part", 999)

    answer = await client.get("/api/v1/storage", headers={"Authorization": f"Bearer {alice_key}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert counted(body["usage"]["total"]) == tree_count(root)
    for kind in ("originals", "videos", "thumbnails", "scratch"):
        assert counted(body["usage"]["kinds"][kind]) == tree_count(root, kind=kind), kind
    assert body["role"] == "owner" and body["owners"] is None and body["unowned"] is None
    assert counted(body["you"]["usage"]["total"]) == tree_count(root, under=f"items/{alice_item}")
    assert counted(body["you"]["usage"]["total"]) == (6860, 4)
    assert body["you"]["quota"]["used_bytes"] == 6860
    assert 0 < body["free_bytes"] <= body["disk_bytes"]

    admin = await client.get("/api/v1/storage", headers={"Authorization": f"Bearer {admin_key}"})
    owners = {o["owner"]: o["usage"] for o in admin.json()["owners"]}
    names = dict(await pool.fetch("SELECT id, name FROM owners WHERE id = ANY($1)", [alice, bob]))
    assert counted(owners[names[alice]]["total"]) == (6860, 4)
    assert counted(owners[names[bob]]["total"]) == tree_count(root, under=f"items/{bob_item}")
    assert counted(owners[names[bob]]["kinds"]["scratch"]) == (77, 1)
    everything = sum(o["total"]["bytes"] for o in owners.values())
    everything += admin.json()["unowned"]["total"]["bytes"]
    assert everything + tree_count(root, under="tmp")[0] == tree_count(root)[0]


async def test_over_the_bytes_quota_a_capture_is_refused_with_the_numbers(
    client: Client,
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
    drained: list[UrlCaptured],
) -> None:
    owner_id, headers = owner
    name = await pool.fetchval("SELECT name FROM owners WHERE id = $1", owner_id)
    item = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    write(gateway_env.media_root, f"items/{item}/video.mp4", 1500)
    assert await set_limits(pool, name, 1000, None)
    before = await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id)

    url = f"http://93.184.215.14/{uuid.uuid4().hex}.mp4"
    refused = await client.post("/api/v1/captures", json={"url": url}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "quota_exceeded"
    assert "1500 of 1000 bytes" in refused.json()["detail"]
    after = await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id)
    assert after == before

    assert await set_limits(pool, name, 10_000, None)
    accepted = await client.post("/api/v1/captures", json={"url": url}, headers=headers)
    assert accepted.status_code == 202, accepted.text
    event = await published_capture(gateway_env, accepted.json()["id"])
    assert event.quota is not None
    assert (event.quota.max_bytes, event.quota.used_bytes, event.quota.left_bytes) == (
        10_000,
        1500,
        8500,
    )


async def test_a_retry_is_held_to_the_bytes_quota_like_a_capture(
    client: Client,
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
    drained: list[UrlCaptured],
) -> None:
    owner_id, headers = owner
    name = await pool.fetchval("SELECT name FROM owners WHERE id = $1", owner_id)
    stored = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    write(gateway_env.media_root, f"items/{stored}/video.mp4", 1500)
    failed = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    await fail_item(pool, failed)
    await published_capture(gateway_env, str(failed))  # the first run's message, taken off
    assert await set_limits(pool, name, 1000, None)

    refused = await client.post(f"/api/v1/items/{failed}/retry", headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "quota_exceeded"
    assert "1500 of 1000 bytes" in refused.json()["detail"]
    row = await pool.fetchrow("SELECT status, run FROM items WHERE id = $1", failed)
    # The new run and its message are written together: run 1 still means no message.
    assert (row["status"], row["run"]) == ("failed", 1)

    assert await set_limits(pool, name, 10_000, None)
    retried = await client.post(f"/api/v1/items/{failed}/retry", headers=headers)
    assert retried.status_code == 202, retried.text
    event = await published_capture(gateway_env, str(failed))
    assert event.run == 2 and event.quota is not None
    assert (event.quota.max_bytes, event.quota.left_bytes) == (10_000, 8500)


async def published_capture(gateway_env: CommonSettings, item_id: str) -> UrlCaptured:
    """The url.captured of ``item_id`` as the downloader will receive it (others are skipped)."""
    connection = await aio_pika.connect(gateway_env.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"{gateway_env.namespace}.downloader.url-captured", passive=True
        )
        async with asyncio.timeout(30):
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    event = UrlCaptured.model_validate_json(message.body)
                    if str(event.item_id) == item_id:
                        return event
    raise AssertionError("unreachable")


async def test_over_the_daily_captures_quota_a_capture_is_refused(
    client: Client,
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    drained: list[UrlCaptured],
) -> None:
    owner_id, headers = owner
    name = await pool.fetchval("SELECT name FROM owners WHERE id = $1", owner_id)
    assert await set_limits(pool, name, None, 2)
    urls = [f"http://93.184.215.14/{uuid.uuid4().hex}.mp4" for _ in range(3)]
    for url in urls[:2]:
        response = await client.post("/api/v1/captures", json={"url": url}, headers=headers)
        assert response.status_code == 202, response.text
    refused = await client.post("/api/v1/captures", json={"url": urls[2]}, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "quota_exceeded"
    assert "2 of 2 captures" in refused.json()["detail"]
    again = await client.post("/api/v1/captures", json={"url": urls[0]}, headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    storage = (await client.get("/api/v1/storage", headers=headers)).json()
    assert storage["you"]["quota"]["max_captures_per_day"] == 2
    assert storage["you"]["quota"]["captures_last_24h"] == 2
