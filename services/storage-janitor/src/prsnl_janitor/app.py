"""Wiring of the storage janitor: subscribers for deletions and orphans, periodic sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from faststream.rabbit import RabbitBroker

from prsnl_common.broker import Topology
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.db import create_pool
from prsnl_common.events import FileOrphaned, ItemDeleted
from prsnl_common.settings import CommonSettings
from prsnl_common.store import LocalMediaStore
from prsnl_janitor import janitor
from prsnl_janitor.settings import JanitorSettings

SERVICE = "storage-janitor"
logger = logging.getLogger(__name__)


def make_setup(settings: JanitorSettings, common: CommonSettings) -> Any:
    @contextlib.asynccontextmanager
    async def setup(broker: RabbitBroker, topology: Topology) -> AsyncIterator[None]:
        store = LocalMediaStore(common.media_root)
        pool = await create_pool(common.database_url, max_size=2)

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
            while True:
                try:
                    removed = await asyncio.to_thread(
                        janitor.sweep_temp, store, settings.temp_ttl_seconds
                    )
                    await asyncio.to_thread(janitor.measure, store)
                    if removed:
                        logger.info("swept %d expired scratch folders", removed)
                except Exception:
                    logger.exception("sweep failed")
                await asyncio.sleep(settings.sweep_interval_seconds)

        sweeper = asyncio.create_task(sweep_forever(), name="janitor-sweep")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await pool.close()

    return setup
