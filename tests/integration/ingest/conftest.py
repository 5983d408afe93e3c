"""The gateway in-process (Litestar test client) against real PostgreSQL and RabbitMQ,
with its own database and namespace and an EMPTY SSRF allow-list."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.db import create_pool
from prsnl_common.settings import CommonSettings
from prsnl_ingest.app import create_app
from prsnl_ingest.catalog import create_owner_key
from prsnl_ingest.settings import IngestSettings
from tests.support.stack import POSTGRES_URL, RABBITMQ_URL, drop_database, remove_namespace
from tests.support.waiting import eventually


@pytest.fixture(scope="session")
async def gateway_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CommonSettings]:
    tag = uuid.uuid4().hex[:10]
    common = CommonSettings(
        database_url=f"{POSTGRES_URL}/prsnl_i{tag}",
        rabbitmq_url=RABBITMQ_URL,
        namespace=f"i{tag}",
        media_root=Path(tmp_path_factory.mktemp("media")),
        ssrf_allowlist="",
        log_format="text",
    )
    yield common
    await remove_namespace(common.namespace)
    await drop_database(common.database_url)


@pytest.fixture(scope="session")
async def client(gateway_env: CommonSettings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(
        IngestSettings(
            progress_interval_seconds=0, metrics_port=0, metrics_on_api_port=True, max_upload_mb=1
        ),
        gateway_env,
    )
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
async def pool(client: AsyncTestClient, gateway_env: CommonSettings) -> AsyncIterator[asyncpg.Pool]:  # type: ignore[type-arg]
    created = await create_pool(gateway_env.database_url, max_size=4)
    yield created
    await created.close()


@pytest.fixture
async def owner(pool: asyncpg.Pool) -> tuple[uuid.UUID, dict[str, str]]:
    owner_id, key = await create_owner_key(pool, f"owner-{uuid.uuid4().hex[:8]}")
    return owner_id, {"Authorization": f"Bearer {key}"}


async def queued_events(settings: CommonSettings, service: str, routing_key: str) -> list[Any]:
    """The payloads of the messages now in ``service``'s queue of ``routing_key`` (given
    back when the channel closes, as :func:`published` does)."""
    connection = await aio_pika.connect(settings.rabbitmq_url)
    async with connection, connection.channel() as channel:
        name = f"{settings.namespace}.{service}.{routing_key.replace('.', '-')}"
        queue = await channel.declare_queue(name, passive=True)
        payloads = []
        while (message := await queue.get(fail=False)) is not None:
            payloads.append(json.loads(message.body))
        return payloads


async def published(
    settings: CommonSettings, service: str, routing_key: str, item_id: str
) -> aio_pika.abc.AbstractIncomingMessage:
    """The message about ``item_id`` that reached ``service``'s queue of ``routing_key``,
    waited for (the relay publishes after the answer). The queue keeps every message:
    those taken to look are given back when the channel closes."""
    found: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(settings.rabbitmq_url)
    async with connection:

        async def look() -> bool:
            async with connection.channel() as channel:
                name = f"{settings.namespace}.{service}.{routing_key.replace('.', '-')}"
                queue = await channel.declare_queue(name, passive=True)
                while (message := await queue.get(fail=False)) is not None:
                    if json.loads(message.body).get("item_id") == item_id:
                        found.append(message)
                        return True
            return False

        await eventually(look, what=f"{routing_key} of {item_id} published")
    return found[0]
