"""Live updates reach listeners through PostgreSQL NOTIFY, also after the database drops
the listening connection (a restart)."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from prsnl_common.settings import CommonSettings
from prsnl_ingest.catalog import ITEMS_CHANNEL
from prsnl_ingest.live import LiveHub

pytestmark = pytest.mark.integration


async def notify(pool: asyncpg.Pool, item_id: uuid.UUID, status: str) -> None:
    payload = json.dumps({"item_id": str(item_id), "kind": "status", "status": status})
    await pool.execute("SELECT pg_notify($1, $2)", ITEMS_CHANNEL, payload)


async def test_listeners_get_their_items_updates_and_survive_a_dropped_connection(
    pool: asyncpg.Pool, gateway_env: CommonSettings
) -> None:
    hub = LiveHub()
    await hub.start(gateway_env.database_url)
    mine, other = uuid.uuid4(), uuid.uuid4()
    try:
        async with hub.listen(mine) as queue:
            await notify(pool, other, "ready")
            await notify(pool, mine, "downloading")
            message = await asyncio.wait_for(queue.get(), 5)
            assert message["status"] == "downloading" and message["item_id"] == str(mine)

            terminated = await pool.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query LIKE 'LISTEN%'"
            )
            assert terminated >= 1
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                await notify(pool, mine, "ready")
                try:
                    message = await asyncio.wait_for(queue.get(), 0.5)
                    break
                except TimeoutError:
                    assert asyncio.get_running_loop().time() < deadline, "never reconnected"
            assert message["status"] == "ready"
            assert queue.empty() or all(
                (await queue.get())["item_id"] == str(mine) for _ in range(queue.qsize())
            )
    finally:
        await hub.stop()


async def test_every_listener_of_an_item_and_of_its_owner_gets_its_own_whole_update(
    pool: asyncpg.Pool, gateway_env: CommonSettings
) -> None:
    hub = LiveHub()
    await hub.start(gateway_env.database_url)
    item_id, owner_id = uuid.uuid4(), uuid.uuid4()
    payload = {"item_id": str(item_id), "owner_id": str(owner_id), "kind": "progress"}
    try:
        async with (
            hub.listen(item_id) as first,
            hub.listen(item_id) as second,
            hub.listen_owner(owner_id) as owners,
            hub.listen_owner(uuid.uuid4()) as strangers,
        ):
            await pool.execute("SELECT pg_notify($1, $2)", ITEMS_CHANNEL, json.dumps(payload))
            got = [await asyncio.wait_for(q.get(), 5) for q in (first, second, owners)]
            got[0].pop("kind")  # a reader taking its copy apart changes no other copy
            assert got[1] == got[2] == payload
            assert strangers.empty()
    finally:
        await hub.stop()
