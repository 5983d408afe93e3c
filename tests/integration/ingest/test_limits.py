"""Gateway limits on two replicas of one database: revoked keys refused at once through
NOTIFY, the per-key capture rate, the per-owner stream cap, and the event stream that
subscribes before it reads."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.events import CaptureOptions
from prsnl_common.settings import CommonSettings
from prsnl_ingest import catalog
from prsnl_ingest.api import items
from prsnl_ingest.app import create_app
from prsnl_ingest.catalog import ITEMS_CHANNEL, NewCapture, create_owner_key, revoke_key
from prsnl_ingest.live import LiveHub
from prsnl_ingest.settings import IngestSettings
from prsnl_ingest.signing import LinkSigner, MediaLinks
from prsnl_ingest.stages import StagePauses
from tests.support.waiting import eventually as wait_until

pytestmark = pytest.mark.integration
BLOCKED = {"url": "http://127.0.0.2/clip.mp4"}  # refused without any DNS look-up


@pytest.fixture(scope="module")
async def replicas(
    gateway_env: CommonSettings,
) -> AsyncIterator[list[AsyncTestClient]]:  # type: ignore[type-arg]
    """Two gateways with a 30 s key cache: only NOTIFY can make them forget a key quickly."""
    settings = IngestSettings(
        metrics_port=0, key_cache_seconds=30, capture_rate_limit="2/minute", max_streams_per_owner=1
    )
    async with (
        AsyncTestClient(create_app(settings, gateway_env)) as first,
        AsyncTestClient(create_app(settings, gateway_env)) as second,
    ):
        yield [first, second]


async def test_a_revoked_key_is_refused_by_every_replica_within_seconds(
    replicas: list[AsyncTestClient],
    pool: asyncpg.Pool,  # type: ignore[type-arg]
) -> None:
    _, key = await create_owner_key(pool, f"revoked-{uuid.uuid4().hex[:6]}")
    headers = {"Authorization": f"Bearer {key}"}
    for replica in replicas:
        assert (await replica.get("/api/v1/items", headers=headers)).status_code == 200
    assert await revoke_key(pool, key) is not None

    async def refused_everywhere() -> bool:
        answers = [await r.get("/api/v1/items", headers=headers) for r in replicas]
        return all(a.status_code == 401 and a.json()["code"] == "unauthorized" for a in answers)

    await wait_until(refused_everywhere, within=3)
    listed = [k for k in await catalog.list_keys(pool) if k.revoked_at is not None]
    assert listed and listed[-1].last_used_at is not None


async def test_captures_are_rate_limited_per_key(
    replicas: list[AsyncTestClient],
    pool: asyncpg.Pool,  # type: ignore[type-arg]
) -> None:
    first = replicas[0]
    keys = [(await create_owner_key(pool, f"rate-{uuid.uuid4().hex[:6]}"))[1] for _ in range(2)]
    headers = {"Authorization": f"Bearer {keys[0]}"}
    answers = [
        await first.post("/api/v1/captures", json=BLOCKED, headers=headers) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [422, 422, 429]
    assert answers[0].headers["RateLimit-Limit"] == "2"
    assert answers[0].headers["RateLimit-Remaining"] == "1"
    limited = answers[2]
    assert limited.json()["code"] == "rate_limited"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert int(limited.headers["RateLimit-Reset"]) == int(limited.headers["Retry-After"])
    other = {"Authorization": f"Bearer {keys[1]}"}
    assert (await first.post("/api/v1/captures", json=BLOCKED, headers=other)).status_code == 422


async def _pending_item(pool: asyncpg.Pool, owner_id: uuid.UUID) -> uuid.UUID:
    outcome = await catalog.capture(
        pool,
        NewCapture(
            owner_id=owner_id,
            url=f"https://example.com/{uuid.uuid4()}.mp4",
            normalized_url=f"https://example.com/{uuid.uuid4()}.mp4",
            platform="direct",
            platform_video_id=None,
            source="api",
            options=CaptureOptions(max_height=720),
        ),
    )
    return uuid.UUID(str(outcome.item["id"]))


def _links(owner_id: uuid.UUID) -> MediaLinks:
    return MediaLinks("", LinkSigner(b"k" * 32, 3600), owner_id, "0" * 12, time.time())


@contextlib.asynccontextmanager
async def local_gateway(pool: asyncpg.Pool, common: CommonSettings) -> AsyncIterator[Any]:
    """The stream's collaborators in this test's loop (the apps run in another)."""
    hub = LiveHub()
    await hub.start(common.database_url)
    try:
        yield SimpleNamespace(
            pool=pool, hub=hub, settings=IngestSettings(metrics_port=0), pauses=StagePauses()
        )
    finally:
        await hub.stop()


async def test_an_owner_holds_a_bounded_number_of_streams(
    replicas: list[AsyncTestClient],  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    gateway_env: CommonSettings,
) -> None:
    first = replicas[0]
    owner_id, key = await create_owner_key(pool, f"streams-{uuid.uuid4().hex[:6]}")
    item_id = await _pending_item(pool, owner_id)
    async with local_gateway(pool, gateway_env) as gateway:
        stream = items._event_stream(gateway, owner_id, item_id, _links(owner_id))
        assert (await anext(stream)).event == "item"
        assert gateway.hub.streams_of(owner_id) == 1
        owner_stream = items._owner_stream(gateway, owner_id)
        assert (await anext(owner_stream)).event == "listening"
        assert gateway.hub.streams_of(owner_id) == 2
        await stream.aclose()
        await owner_stream.aclose()
        assert gateway.hub.streams_of(owner_id) == 0
    # The replica runs in the test client's own loop; its count is a plain dict.
    hub = first.app.state.gateway.hub
    hub._streams[owner_id] = 1
    try:
        answer = await first.get(
            f"/api/v1/items/{item_id}/events", headers={"Authorization": f"Bearer {key}"}
        )
        everything = await first.get(
            "/api/v1/items/events", headers={"Authorization": f"Bearer {key}"}
        )
    finally:
        del hub._streams[owner_id]
    assert answer.status_code == 429 and answer.json()["code"] == "too_many_streams"
    assert everything.status_code == 429 and everything.json()["code"] == "too_many_streams"


async def test_the_owner_stream_carries_every_change_of_its_owners_items_only(
    pool: asyncpg.Pool, gateway_env: CommonSettings
) -> None:
    owner_id, _ = await create_owner_key(pool, f"watch-{uuid.uuid4().hex[:6]}")
    other_id, _ = await create_owner_key(pool, f"other-{uuid.uuid4().hex[:6]}")
    async with local_gateway(pool, gateway_env) as gateway:
        stream = items._owner_stream(gateway, owner_id)
        try:
            assert (await anext(stream)).event == "listening"
            # The other owner's changes come first on the channel; none may arrive here.
            theirs = await _pending_item(pool, other_id)
            await catalog.delete_item(pool, other_id, theirs)
            mine = await _pending_item(pool, owner_id)
            await catalog.delete_item(pool, owner_id, mine)
            created, deleted = await anext(stream), await anext(stream)
        finally:
            await stream.aclose()
    assert (created.event, deleted.event) == ("created", "deleted")
    data = json.loads(str(created.data))
    assert data == {"item_id": str(mine), "status": "pending", "run": data["run"]}
    assert json.loads(str(deleted.data)) == {"item_id": str(mine)}


async def test_the_event_stream_loses_no_update_between_its_read_and_its_subscription(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    gateway_env: CommonSettings,
) -> None:
    owner_id, _ = owner
    item_id = await _pending_item(pool, owner_id)
    async with local_gateway(pool, gateway_env) as gateway:
        await _assert_no_update_lost(gateway, pool, item_id, owner_id, monkeypatch)


async def _assert_no_update_lost(
    gateway: Any,
    pool: asyncpg.Pool,
    item_id: uuid.UUID,
    owner_id: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_get_item = catalog.get_item

    async def read_then_change(*args: Any) -> asyncpg.Record:
        """The item changes right after the stream read it: the change must still arrive."""
        row = await real_get_item(*args)
        await pool.execute(
            "SELECT pg_notify($1, $2)",
            ITEMS_CHANNEL,
            f'{{"item_id": "{item_id}", "kind": "status", "status": "downloading"}}',
        )

        async def delivered() -> bool:
            return any(not q.empty() for q in gateway.hub._listeners.get(item_id, ()))

        await wait_until(delivered, within=5)
        return row

    monkeypatch.setattr(items.catalog, "get_item", read_then_change)
    stream = items._event_stream(gateway, owner_id, item_id, _links(owner_id))
    try:
        first = await anext(stream)
        assert first.event == "item" and '"status":"pending"' in str(first.data)
        update = await anext(stream)
        assert update.event == "status" and '"downloading"' in str(update.data)
    finally:
        await stream.aclose()
