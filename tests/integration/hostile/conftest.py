"""A real gateway process on loopback (real PostgreSQL and RabbitMQ, EMPTY allow-list),
seeded with a ready item for each of two owners, and a probe of everything a request
could leave behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest

from prsnl_common.broker import SUBSCRIPTIONS, Topology
from prsnl_common.settings import CommonSettings
from prsnl_ingest.catalog import create_owner_key
from tests.support.stack import (
    Stack,
    drop_database,
    free_port,
    remove_namespace,
    stack_env,
)

VIDEO_SIZE = 1000


@dataclass(frozen=True)
class Seeded:
    """Two owners, each with a ready item that has a video and a 320 px thumbnail."""

    mine: uuid.UUID
    theirs: uuid.UUID
    my_headers: dict[str, str]
    their_headers: dict[str, str]


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Only the gateway: nothing consumes the workers' queues, so a stray message stays."""
    root = tmp_path_factory.mktemp("hostile")
    env = stack_env(
        root,
        PRSNL_SSRF_ALLOWLIST="",
        PRSNL_LOG_FORMAT="text",
        PRSNL_INGEST_CAPTURE_RATE_LIMIT="100000/minute",
    )
    port = free_port()
    env["PRSNL_INGEST_PORT"] = str(port)
    stack = Stack(root=root, env=env, port=port)
    try:
        stack.start("ingest")
        stack.wait_ready()
        yield stack
    finally:
        stack.stop_all()
        asyncio.run(remove_namespace(env["PRSNL_NAMESPACE"]))
        asyncio.run(drop_database(env["PRSNL_DATABASE_URL"]))


@pytest.fixture(scope="session")
async def db(gateway: Stack) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(gateway.database_url, min_size=1, max_size=3)
    assert pool is not None
    yield pool
    await pool.close()


async def _ready_item(pool: asyncpg.Pool, owner_id: uuid.UUID, media_root: Path) -> uuid.UUID:
    item_id = uuid.uuid4()
    folder = media_root / "items" / str(item_id)
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(bytes(range(256)) * 3 + b"\0" * (VIDEO_SIZE - 768))
    (folder / "thumb-320.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    await pool.execute(
        "INSERT INTO items (id, owner_id, url, normalized_url, platform, source, status, "
        "video_key, original_key, thumbnail_keys, ready_at) VALUES ($1, $2, $3, $3, 'direct', "
        "'api', 'ready', $4, $5, $6::jsonb, now())",
        item_id,
        owner_id,
        f"https://example.com/{item_id}.mp4",
        f"items/{item_id}/video.mp4",
        f"items/{item_id}/video.mp4",
        json.dumps({"320": f"items/{item_id}/thumb-320.jpg"}),
    )
    return item_id


@pytest.fixture(scope="session")
async def seeded(gateway: Stack, db: asyncpg.Pool) -> Seeded:
    me, my_key = await create_owner_key(db, f"me-{uuid.uuid4().hex[:6]}")
    them, their_key = await create_owner_key(db, f"them-{uuid.uuid4().hex[:6]}")
    mine = await _ready_item(db, me, gateway.media_root)
    theirs = await _ready_item(db, them, gateway.media_root)
    return Seeded(
        mine,
        theirs,
        {"Authorization": f"Bearer {my_key}"},
        {"Authorization": f"Bearer {their_key}"},
    )


@pytest.fixture(scope="session")
async def api(gateway: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as client:
        yield client


def _queue_names(namespace: str) -> list[str]:
    topology = Topology(CommonSettings(namespace=namespace))
    names = [
        topology.queue_name(service, event.routing_key)
        for service, events in SUBSCRIPTIONS.items()
        for event in events
    ]
    return names + [topology.dlq_name(service) for service in SUBSCRIPTIONS]


@dataclass(frozen=True)
class Snapshot:
    items: int
    outbox: int
    api_keys: int
    queues: dict[str, int]
    files: frozenset[str]


async def snapshot(gateway: Stack, db: asyncpg.Pool) -> Snapshot:
    """Everything a request could leave behind: rows, messages, files."""
    queues: dict[str, int] = {}
    connection = await aio_pika.connect(gateway.env["PRSNL_RABBITMQ_URL"])
    async with connection:
        channel = await connection.channel()
        for name in _queue_names(gateway.namespace):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                queue = await channel.declare_queue(name, passive=True)
                queues[name] = queue.declaration_result.message_count or 0
    files = frozenset(str(p.relative_to(gateway.media_root)) for p in gateway.media_root.rglob("*"))
    return Snapshot(
        items=await db.fetchval("SELECT count(*) FROM items"),
        outbox=await db.fetchval("SELECT count(*) FROM outbox"),
        api_keys=await db.fetchval("SELECT count(*) FROM api_keys"),
        queues=queues,
        files=files,
    )
