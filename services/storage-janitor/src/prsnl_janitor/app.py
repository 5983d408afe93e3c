"""Wiring of the storage janitor: subscribers for deletions and orphans, periodic sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from faststream.rabbit import RabbitBroker

from prsnl_common.broker import EventPublisher, Topology
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.db import create_pool, ensure_database, migrate
from prsnl_common.errors import TransientError
from prsnl_common.events import FileOrphaned, ItemDeleted
from prsnl_common.settings import CommonSettings
from prsnl_common.store import open_store
from prsnl_common.tasks import cancel_and_wait
from prsnl_janitor import janitor, sweep
from prsnl_janitor.settings import JanitorSettings
from prsnl_janitor.sweep import MIGRATIONS

SERVICE = "storage-janitor"
logger = logging.getLogger(__name__)


def make_setup(settings: JanitorSettings, common: CommonSettings) -> Any:
    @contextlib.asynccontextmanager
    async def setup(broker: RabbitBroker, topology: Topology) -> AsyncIterator[None]:
        store = open_store(common)
        await ensure_database(common.database_url)
        await migrate(common.database_url, MIGRATIONS)
        pool = await create_pool(common.database_url, max_size=4)
        publisher = EventPublisher(broker, topology)

        async def on_item_deleted(event: ItemDeleted, job: Job[ItemDeleted]) -> None:
            await janitor.remove_deleted_item(event, store)

        async def on_file_orphaned(event: FileOrphaned, job: Job[FileOrphaned]) -> None:
            await janitor.remove_orphan(event, store, pool)

        subscribe_stage(
            broker,
            topology,
            service=SERVICE,
            stage="catalog",
            event_type=ItemDeleted,
            handler=on_item_deleted,
        )
        subscribe_stage(
            broker,
            topology,
            service=SERVICE,
            stage="catalog",
            event_type=FileOrphaned,
            handler=on_file_orphaned,
        )

        async def sweep_forever() -> None:
            # Announcements need the exchange and queues the worker declares before it starts.
            while not broker.running:  # noqa: ASYNC110 - the broker offers no event to await
                await asyncio.sleep(0.2)
            while True:
                try:
                    findings = await sweep.sweep_once(pool, store, publisher.publish, settings)
                    await janitor.measure(pool, store)
                    removed = [f for f in findings if f.action == "removed"]
                    if removed:
                        logger.info("sweep removed %d files or scratch folders", len(removed))
                except TransientError as error:  # the object store away: the next sweep retries
                    logger.warning("sweep skipped: %s", error.message)
                except Exception:
                    logger.exception("sweep failed")
                await asyncio.sleep(settings.sweep_interval_seconds)

        sweeper = asyncio.create_task(sweep_forever(), name="janitor-sweep")
        try:
            yield
        finally:
            await cancel_and_wait(sweeper)
            await pool.close()

    return setup
