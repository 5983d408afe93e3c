"""The janitor against a real PostgreSQL catalog (own database per test) and a real media tree."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from prsnl_common.db import create_pool, ensure_database, migrate
from prsnl_common.events import Event
from prsnl_common.settings import CommonSettings
from prsnl_common.store import LocalMediaStore
from prsnl_ingest.app import MIGRATIONS as CATALOG_MIGRATIONS
from prsnl_ingest.catalog import create_owner_key
from prsnl_janitor.sweep import MIGRATIONS as JANITOR_MIGRATIONS
from tests.support.catalog import new_item
from tests.support.stack import POSTGRES_URL, RABBITMQ_URL, drop_database, remove_namespace

OLD = 3600.0  # seconds: files this old are past every minimum age the tests use


@dataclass
class Published:
    """A publisher that keeps what it was given (the announcement's delivery is tested in e2e)."""

    events: list[Event] = field(default_factory=list)

    async def __call__(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
async def common(tmp_path: Path) -> AsyncIterator[CommonSettings]:
    tag = uuid.uuid4().hex[:10]
    settings = CommonSettings(
        database_url=f"{POSTGRES_URL}/prsnl_j{tag}",
        rabbitmq_url=RABBITMQ_URL,
        namespace=f"j{tag}",
        media_root=tmp_path / "media",
        log_format="text",
    )
    await ensure_database(settings.database_url)
    await migrate(settings.database_url, CATALOG_MIGRATIONS)
    await migrate(settings.database_url, JANITOR_MIGRATIONS)
    yield settings
    await remove_namespace(settings.namespace)
    await drop_database(settings.database_url)


@pytest.fixture
async def pool(common: CommonSettings) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(common.database_url, max_size=4)
    yield created
    await created.close()


@pytest.fixture
def store(common: CommonSettings) -> LocalMediaStore:
    return LocalMediaStore(common.media_root)


@pytest.fixture
async def owner_id(pool: asyncpg.Pool) -> uuid.UUID:
    owner, _ = await create_owner_key(pool, f"owner-{uuid.uuid4().hex[:8]}")
    return owner


def put(store: LocalMediaStore, key: str, size: int = 1000, age: float = OLD) -> Path:
    """Write ``size`` bytes at ``key``, last changed ``age`` seconds ago."""
    path = store.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


async def item_in(
    pool: asyncpg.Pool, owner_id: uuid.UUID, status: str, **columns: object
) -> uuid.UUID:
    """An item of ``owner_id`` moved straight to ``status`` with the given stored keys."""
    item_id = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=3))
    await pool.execute(
        f"UPDATE items SET status = $2{', ' + assignments if columns else ''} WHERE id = $1",
        item_id,
        status,
        *columns.values(),
    )
    return item_id
