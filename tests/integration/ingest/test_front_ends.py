"""What a chat front end needs from the API: captures that record their source and where to
answer, and the owner's items in the storage answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.errors import PipelineError
from prsnl_common.settings import CommonSettings
from prsnl_common.store import LocalMediaStore
from prsnl_ingest.capture import Upload, capture_upload
from prsnl_ingest.catalog import create_owner_key
from prsnl_ingest.quotas import Limits, set_limits
from tests.integration.ingest.conftest import published
from tests.support.clips import make_clip

pytestmark = pytest.mark.integration


async def test_a_telegram_capture_records_its_source_and_reply_to(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
) -> None:
    body = {
        "url": "http://93.184.215.14/clips/front-end-1.mp4",
        "source": "telegram",
        "reply_to": {"chat_id": -100123, "message_id": 42},
    }
    response = await client.post("/api/v1/captures", json=body, headers=owner[1])
    assert response.status_code == 202, response.text
    assert response.json()["source"] == "telegram"
    item_id = uuid.UUID(response.json()["id"])
    row = await pool.fetchrow("SELECT source, reply_to FROM items WHERE id = $1", item_id)
    assert row is not None
    assert row["source"] == "telegram"
    assert row["reply_to"] == {"chat_id": -100123, "message_id": 42}
    message = await published(gateway_env, "downloader", "url.captured", str(item_id))
    payload = json.loads(message.body)
    assert payload["source"] == "telegram"
    assert payload["reply_to"] == {"chat_id": -100123, "message_id": 42}


@pytest.mark.parametrize(
    "extra",
    [
        {"source": "email"},
        {"reply_to": {"chat_id": "12"}},
        {"reply_to": {"chat_id": 1, "thread": 2}},
        {"reply_to": 5},
    ],
)
async def test_bad_front_end_fields_are_refused_and_store_nothing(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    extra: dict[str, object],
) -> None:
    body = {"url": "http://93.184.215.14/clips/front-end-2.mp4", **extra}
    response = await client.post("/api/v1/captures", json=body, headers=owner[1])
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner[0]) == 0


async def test_storage_counts_the_owners_items_by_status_only(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
) -> None:
    empty = await client.get("/api/v1/storage", headers=owner[1])
    assert empty.status_code == 200
    assert empty.json()["you"]["items"] == {}
    for n in range(2):
        url = f"http://93.184.215.14/clips/usage-{n}.mp4"
        answer = await client.post("/api/v1/captures", json={"url": url}, headers=owner[1])
        assert answer.status_code == 202
    first = uuid.UUID(answer.json()["id"])
    await pool.execute("UPDATE items SET status = 'ready' WHERE id = $1", first)
    you = (await client.get("/api/v1/storage", headers=owner[1])).json()["you"]
    assert you["items"] == {"pending": 1, "ready": 1}
    assert (await client.get("/api/v1/storage")).status_code == 401


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("upload") / "clip.mp4"
    make_clip(path, duration=1, width=160, height=120, fps=10)
    return path.read_bytes()


def stored_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def test_an_upload_is_stored_and_announced_as_downloaded_in_one_go(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
    clip: bytes,
) -> None:
    headers = {**owner[1], "Content-Type": "video/mp4", "X-Filename": "holiday.mp4"}
    response = await client.post("/api/v1/uploads", content=clip, headers=headers)
    assert response.status_code == 202, response.text
    item = response.json()
    assert item["source"] == "api" and item["title"] == "holiday.mp4"
    key = f"items/{item['id']}/original.mp4"
    assert (gateway_env.media_root / key).read_bytes() == clip
    message = await published(gateway_env, "transcoder", "video.downloaded", item["id"])
    event = json.loads(message.body)
    assert event["original_key"] == key and event["size"] == len(clip)

    again = await client.post("/api/v1/uploads", content=clip, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == item["id"]
    assert again.json()["duplicate"] is True
    folder = gateway_env.media_root / "items" / item["id"]
    assert [p.name for p in folder.iterdir()] == ["original.mp4"]

    # A failed upload has no source to download again: retry says so instead of failing later.
    await pool.execute(
        "UPDATE items SET status = 'failed', error_code = 'invalid_media' WHERE id = $1",
        uuid.UUID(item["id"]),
    )
    retry = await client.post(f"/api/v1/items/{item['id']}/retry", headers=owner[1])
    assert retry.status_code == 409 and retry.json()["code"] == "not_retryable"


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", b"{}", 415, "unsupported_media_type"),
        ("video/mp4", b"", 422, "empty_download"),
        ("video/mp4", b"x" * (1024 * 1024 + 1), 413, "payload_too_large"),
    ],
)
async def test_a_refused_upload_leaves_nothing_behind(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
    content_type: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    before = stored_files(gateway_env.media_root)
    headers = {**owner[1], "Content-Type": content_type}
    response = await client.post("/api/v1/uploads", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner[0]) == 0
    assert stored_files(gateway_env.media_root) == before


async def test_an_upload_without_length_is_cut_at_the_cap(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]], gateway_env: CommonSettings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap holds while streaming
        for _ in range(40):
            yield b"y" * 65536

    store = LocalMediaStore(gateway_env.media_root)
    before = stored_files(gateway_env.media_root)
    upload = Upload(chunks(), "video/mp4", None, 1024 * 1024, "api")
    with pytest.raises(PipelineError) as refused:
        await capture_upload(pool, store, owner[0], upload, Limits(0, 0))
    assert refused.value.code == "too_large"
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner[0]) == 0
    assert stored_files(gateway_env.media_root) == before


async def test_an_upload_is_held_to_the_owners_quotas_and_leaves_nothing_when_refused(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    gateway_env: CommonSettings,
    clip: bytes,
) -> None:
    name = f"upload-quota-{uuid.uuid4().hex[:6]}"
    owner_id, key = await create_owner_key(pool, name)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "video/mp4"}
    files_before = stored_files(gateway_env.media_root)
    assert await set_limits(pool, name, len(clip) // 2, None)
    refused = await client.post("/api/v1/uploads", content=clip, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "quota_exceeded" and "left" in refused.json()["detail"]
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id) == 0
    assert stored_files(gateway_env.media_root) == files_before

    assert await set_limits(pool, name, 0, 1)  # bytes unlimited, one capture a day
    first = await client.post("/api/v1/uploads", content=clip, headers=headers)
    assert first.status_code == 202, first.text
    other = clip + b"\0"  # other bytes: not the same upload again
    second = await client.post("/api/v1/uploads", content=other, headers=headers)
    assert second.status_code == 422 and second.json()["code"] == "quota_exceeded"
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id) == 1
    assert stored_files(gateway_env.media_root) == sorted(
        [*files_before, f"items/{first.json()['id']}/original.mp4"]
    )
