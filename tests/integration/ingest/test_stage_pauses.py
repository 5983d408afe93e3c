"""A worker's low-disk pause, announced on the broker, shows on the items that wait for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from faststream.rabbit import RabbitBroker
from litestar.testing import AsyncTestClient

from prsnl_common.broker import Topology, create_broker
from prsnl_common.events import StageState
from prsnl_common.settings import CommonSettings
from tests.support.catalog import new_item
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.fixture
async def worker_broker(gateway_env: CommonSettings) -> AsyncIterator[RabbitBroker]:
    broker = create_broker(gateway_env)
    await broker.connect()
    yield broker
    await broker.stop()


def state(paused: bool, service: str = "downloader") -> StageState:
    return StageState(
        service=service,
        instance="worker-1:42",
        paused=paused,
        free_bytes=300 * 1024 * 1024,
        min_free_bytes=1024 * 1024 * 1024,
    )


async def test_a_paused_downloader_shows_on_pending_items_until_it_resumes(
    client: Client,
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
    worker_broker: RabbitBroker,
) -> None:
    owner_id, headers = owner
    pending = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    downloaded = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    await pool.execute("UPDATE items SET status = 'downloaded' WHERE id = $1", downloaded)
    topology = Topology(gateway_env)

    async def view(item_id: uuid.UUID) -> dict[str, Any]:
        answer = await client.get(f"/api/v1/items/{item_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    assert (await view(pending))["waiting"] is None
    await topology.publish_state(worker_broker, state(paused=True))

    async def shown() -> bool:
        return (await view(pending))["waiting"] is not None

    await eventually(shown, within=10, what="the pause shown on the pending item")
    waiting = (await view(pending))["waiting"]
    assert (waiting["reason"], waiting["stage"]) == ("low_disk", "downloader")
    assert (
        "Downloads are paused: 300.0 MiB free in the media store, below 1.0 GiB"
        in (waiting["detail"])
    )
    assert (await view(downloaded))["waiting"] is None  # the transcoder is not paused
    listed = await client.get("/api/v1/items", params={"status": "pending"}, headers=headers)
    assert {i["id"]: i["waiting"] for i in listed.json()["items"]}[str(pending)] == waiting
    assert await pool.fetchval("SELECT count(*) FROM stage_pauses") == 1

    await topology.publish_state(worker_broker, state(paused=False))

    async def gone() -> bool:
        return (await view(pending))["waiting"] is None

    await eventually(gone, within=10, what="the pause gone once the downloader resumed")
    assert await pool.fetchval("SELECT count(*) FROM stage_pauses") == 0


async def test_a_pause_missed_while_the_listener_was_away_shows_once_it_is_back(
    client: Client, pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, headers = owner
    pending = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    # Recorded by another replica while this one's LISTEN connection is gone: no NOTIFY here.
    paused = state(paused=True)
    await pool.execute(
        "INSERT INTO stage_pauses (service, instance, free_bytes, min_free_bytes) "
        "VALUES ($1, $2, $3, $4)",
        paused.service,
        paused.instance,
        paused.free_bytes,
        paused.min_free_bytes,
    )
    dropped = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
    )
    assert dropped >= 1

    async def shown() -> bool:
        answer = await client.get(f"/api/v1/items/{pending}", headers=headers)
        return answer.json()["waiting"] is not None

    await eventually(shown, within=15, what="the missed pause shown after the reconnect")
