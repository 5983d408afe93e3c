"""Wiring of the downloader: media store, warm yt-dlp pool, ``url.captured`` subscription."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from faststream.rabbit import RabbitBroker

from prsnl_common.broker import Topology
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.events import UrlCaptured
from prsnl_common.store import open_store
from prsnl_common.worker import Setup
from prsnl_downloader.pool import DownloadPool
from prsnl_downloader.service import download_video
from prsnl_downloader.settings import DownloaderSettings

SERVICE = "downloader"


def make_setup(settings: DownloaderSettings) -> Setup:
    """The worker's ``setup(broker, topology)``: resources up, handler subscribed, all down on exit.

    Every replica runs this; replicas are competing consumers of one quorum
    queue, and each keeps ``concurrency`` jobs (and warm processes) of its own.
    """

    @contextlib.asynccontextmanager
    async def setup(broker: RabbitBroker, topology: Topology) -> AsyncIterator[None]:
        common = topology.settings
        store = open_store(common)
        pool = DownloadPool(
            settings.concurrency,
            allowlist=common.allow_rules,
            job_timeout=settings.job_timeout_seconds,
            stall_seconds=settings.stall_seconds,
            min_rate=settings.min_speed_bytes,
            acquire_timeout=settings.acquire_timeout_seconds,
        )
        await pool.start()
        try:

            async def on_url_captured(event: UrlCaptured, job: Job[UrlCaptured]) -> None:
                await download_video(
                    event, job, pool=pool, store=store, settings=settings, common=common
                )

            subscribe_stage(
                broker,
                topology,
                service=SERVICE,
                stage="download",
                event_type=UrlCaptured,
                handler=on_url_captured,
                concurrency=settings.concurrency,
                stop_on_delete=True,
            )
            yield
        finally:
            await pool.close()

    return setup
