"""Item reads come from the gateway's item cache, and a change made by anyone (another
replica, a worker, an operator's SQL) reaches it through the catalog's trigger: an answer
never keeps a row PostgreSQL has changed, also across a dropped listening connection."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.support.catalog import new_item
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
AnyClient = AsyncTestClient  # type: ignore[type-arg]


async def _title(client: AnyClient, headers: dict[str, str], item_id: uuid.UUID) -> object:
    response = await client.get(f"/api/v1/items/{item_id}", headers=headers)
    return response.json().get("title") if response.status_code == 200 else response.status_code


async def test_an_update_or_delete_made_outside_the_gateway_reaches_its_next_answer(
    client: AnyClient, pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, headers = owner
    item_id = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    for _ in range(3):
        assert await _title(client, headers, item_id) is None
    await pool.execute("UPDATE items SET title = 'set elsewhere' WHERE id = $1", item_id)

    async def shows(expected: object) -> bool:
        return await _title(client, headers, item_id) == expected

    await eventually(lambda: shows("set elsewhere"), within=5, what="the new title answered")
    await pool.execute("DELETE FROM items WHERE id = $1", item_id)
    await eventually(lambda: shows(404), within=5, what="the deleted item refused")


async def test_a_change_while_the_listening_connection_is_down_is_not_hidden(
    client: AnyClient, pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, headers = owner
    item_id = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    assert await _title(client, headers, item_id) is None
    async with pool.acquire() as connection, connection.transaction():
        terminated = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE 'LISTEN%'"
        )
        assert terminated >= 1
        # Committed with the listener gone: its notice reaches nobody.
        await connection.execute("UPDATE items SET title = 'while down' WHERE id = $1", item_id)

    async def shows_it() -> bool:
        return await _title(client, headers, item_id) == "while down"

    await eventually(shows_it, within=10, what="the change made while nobody listened")
