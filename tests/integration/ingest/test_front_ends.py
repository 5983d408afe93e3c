"""What a chat front end needs from the API: captures that record their source and where to
answer, and the owner's usage."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.integration


async def test_a_telegram_capture_records_its_source_and_reply_to(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
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
    payload = await pool.fetchval(
        "SELECT payload FROM outbox WHERE payload->>'item_id' = $1", str(item_id)
    )
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


async def test_usage_counts_the_owners_items_and_bytes_only(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
) -> None:
    empty = await client.get("/api/v1/usage", headers=owner[1])
    assert empty.status_code == 200
    assert empty.json() == {"items": 0, "bytes": 0, "by_status": {}}
    for n in range(2):
        url = f"http://93.184.215.14/clips/usage-{n}.mp4"
        answer = await client.post("/api/v1/captures", json={"url": url}, headers=owner[1])
        assert answer.status_code == 202
    first = uuid.UUID(answer.json()["id"])
    await pool.execute(
        "UPDATE items SET status = 'ready', original_size = 1000, video_key = 'v', "
        "metadata = '{\"size\": 500}' WHERE id = $1",
        first,
    )
    usage = (await client.get("/api/v1/usage", headers=owner[1])).json()
    assert usage == {"items": 2, "bytes": 1500, "by_status": {"pending": 1, "ready": 1}}
    assert (await client.get("/api/v1/usage")).status_code == 401
