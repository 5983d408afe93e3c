"""The janitor's storage gauges hold the numbers of GET /api/v1/storage: a count of the tree."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from prometheus_client import REGISTRY

from prsnl_common.store import LocalMediaStore
from prsnl_janitor import janitor
from tests.integration.janitor.conftest import put

pytestmark = pytest.mark.integration


def gauge(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


async def test_gauges_equal_the_bytes_and_files_of_the_tree(
    pool: asyncpg.Pool, store: LocalMediaStore, owner_id: uuid.UUID
) -> None:
    item = uuid.uuid4()
    await pool.execute(
        "INSERT INTO items (id, owner_id, url, normalized_url, platform, source) "
        "VALUES ($1, $2, 'https://e.com/v', 'https://e.com/v', 'direct', 'api')",
        item,
        owner_id,
    )
    put(store, f"items/{item}/original.mkv", size=5000)
    put(store, f"items/{item}/video.mp4", size=3000)
    put(store, f"items/{item}/thumb-320.jpg", size=100)
    put(store, f"items/{uuid.uuid4()}/video.mp4", size=7)
    put(store, "tmp/job/x.part", size=11)
    name = await pool.fetchval("SELECT name FROM owners WHERE id = $1", owner_id)

    report = await janitor.measure(pool, store)
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert report.everything.total.bytes == sum(p.stat().st_size for p in files) == 8118
    expected = {"original": (5000, 1), "video": (3007, 2), "thumbnail": (100, 1), "temp": (11, 1)}
    for kind, (size, count) in expected.items():
        assert gauge("prsnl_storage_bytes", kind=kind) == size
        assert gauge("prsnl_storage_files", kind=kind) == count
    assert gauge("prsnl_storage_owner_bytes", owner=name) == 8100
    assert gauge("prsnl_storage_owner_files", owner=name) == 3
    assert 0 < gauge("prsnl_storage_free_bytes") <= gauge("prsnl_storage_disk_bytes")
