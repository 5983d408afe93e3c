"""The item cache serves a row only while it is known unchanged (see prsnl_ingest.itemcache)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from prsnl_ingest.catalog import CatalogError
from prsnl_ingest.itemcache import MARKS, ItemCache


class Rows:
    """What ``catalog.get_item`` asks of a pool: ``fetchrow`` by item and owner, counted."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.reads = 0
        self.while_reading: Callable[[], None] | None = None

    def add(self, owner_id: uuid.UUID, title: str = "first") -> uuid.UUID:
        item_id = uuid.uuid4()
        self.rows[item_id] = {"id": item_id, "owner_id": owner_id, "title": title}
        return item_id

    async def fetchrow(self, _query: str, item_id: uuid.UUID, owner_id: uuid.UUID) -> Any:
        self.reads += 1
        if self.while_reading is not None:
            self.while_reading()
        row = self.rows.get(item_id)
        return dict(row) if row and row["owner_id"] == owner_id else None


OWNER = uuid.uuid4()


def listening_cache(size: int = 16, seconds: float = 60.0) -> ItemCache:
    cache = ItemCache(size, seconds)
    cache.changed("")  # what the hub says once it listens
    return cache


async def read(cache: ItemCache, rows: Rows, item_id: uuid.UUID, owner: uuid.UUID = OWNER) -> Any:
    return await cache.get(rows, owner, item_id)  # type: ignore[arg-type]


async def test_a_row_read_once_is_served_again_until_it_changes() -> None:
    cache, rows = listening_cache(), Rows()
    item_id = rows.add(OWNER)
    assert (await read(cache, rows, item_id))["title"] == "first"
    assert (await read(cache, rows, item_id))["title"] == "first"
    assert rows.reads == 1
    rows.rows[item_id]["title"] = "second"
    cache.changed(str(item_id))
    assert (await read(cache, rows, item_id))["title"] == "second"
    assert rows.reads == 2


async def test_another_owner_never_gets_a_cached_row() -> None:
    cache, rows = listening_cache(), Rows()
    item_id = rows.add(OWNER)
    await read(cache, rows, item_id)
    with pytest.raises(CatalogError) as refused:
        await read(cache, rows, item_id, owner=uuid.uuid4())
    assert refused.value.code == "not_found"


async def test_nothing_is_cached_before_the_hub_listens_or_after_it_lost_the_connection() -> None:
    cache, rows = ItemCache(16), Rows()
    item_id = rows.add(OWNER)
    await read(cache, rows, item_id)
    await read(cache, rows, item_id)
    assert rows.reads == 2
    cache.changed("")
    await read(cache, rows, item_id)
    await read(cache, rows, item_id)
    assert rows.reads == 3
    cache.lost()
    rows.rows[item_id]["title"] = "changed while nobody listened"
    assert (await read(cache, rows, item_id))["title"] == "changed while nobody listened"
    await read(cache, rows, item_id)
    assert rows.reads == 5
    cache.changed("")  # listening again: it starts empty
    assert (await read(cache, rows, item_id))["title"] == "changed while nobody listened"
    assert rows.reads == 6


async def test_a_read_that_raced_a_change_is_not_kept() -> None:
    cache, rows = listening_cache(), Rows()
    item_id = rows.add(OWNER)
    rows.while_reading = lambda: cache.changed(str(item_id))
    await read(cache, rows, item_id)
    rows.while_reading = None
    await read(cache, rows, item_id)
    assert rows.reads == 2  # the first row was not kept; the second is
    await read(cache, rows, item_id)
    assert rows.reads == 2


async def test_a_raced_read_is_not_kept_even_when_its_change_is_no_longer_remembered() -> None:
    cache, rows = listening_cache(), Rows()
    item_id = rows.add(OWNER)

    def change_it_and_many_others() -> None:
        cache.changed(str(item_id))
        for _ in range(MARKS + 1):
            cache.changed(str(uuid.uuid4()))

    rows.while_reading = change_it_and_many_others
    await read(cache, rows, item_id)
    rows.while_reading = None
    await read(cache, rows, item_id)
    assert rows.reads == 2


async def test_a_truncate_or_a_malformed_notice_forgets_every_row() -> None:
    cache, rows = listening_cache(), Rows()
    first, second = rows.add(OWNER), rows.add(OWNER)
    for item_id in (first, second):
        await read(cache, rows, item_id)
    cache.changed("not an id")
    for item_id in (first, second):
        await read(cache, rows, item_id)
    assert rows.reads == 4


async def test_the_cache_keeps_at_most_size_rows_and_drops_the_least_recently_read() -> None:
    cache, rows = listening_cache(size=2), Rows()
    first, second, third = (rows.add(OWNER) for _ in range(3))
    for item_id in (first, second, first, third):  # first was read after second
        await read(cache, rows, item_id)
    assert rows.reads == 3
    await read(cache, rows, first)
    assert rows.reads == 3
    await read(cache, rows, second)
    assert rows.reads == 4


async def test_size_zero_or_no_life_caches_nothing() -> None:
    for cache in (listening_cache(size=0), listening_cache(seconds=0)):
        rows = Rows()
        item_id = rows.add(OWNER)
        await read(cache, rows, item_id)
        await read(cache, rows, item_id)
        assert rows.reads == 2
