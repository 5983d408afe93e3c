"""The catalog's subscribers: every pipeline event moves its item forward.

The catalog updates are idempotent (see :mod:`prsnl_ingest.catalog`), so these
handlers simply apply; durable events follow the shared failure policy (retry
with back-off, then the DLQ). Progress is throttled per item before it touches
the database, and dropped if the database cannot take it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from prsnl_common.broker import Topology
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.events import (
    ItemFailed,
    RetryScheduled,
    VideoDownloaded,
    VideoDownloadProgress,
    VideoTranscoded,
    VideoTranscodeProgress,
)
from prsnl_ingest import catalog, metrics

SERVICE = "ingest"
logger = logging.getLogger(__name__)


class ProgressThrottle:
    """Lets one progress update per item through every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[uuid.UUID, float] = {}

    def allow(self, item_id: uuid.UUID) -> bool:
        now = time.monotonic()
        if now - self._last.get(item_id, 0.0) < self.interval:
            return False
        self._last[item_id] = now
        if len(self._last) > 10_000:
            self._last = {k: v for k, v in self._last.items() if now - v < 60}
        return True


def subscribe_catalog(
    broker: RabbitBroker, topology: Topology, pool: asyncpg.Pool, progress_interval: float
) -> None:
    throttle = ProgressThrottle(progress_interval)

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoDownloadProgress),
        topology.events,
        ack_policy=AckPolicy.ACK,
    )
    async def on_video_download_progress(event: VideoDownloadProgress) -> None:
        if throttle.allow(event.item_id):
            await catalog.apply_download_progress(pool, event)

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoTranscodeProgress),
        topology.events,
        ack_policy=AckPolicy.ACK,
    )
    async def on_video_transcode_progress(event: VideoTranscodeProgress) -> None:
        if throttle.allow(event.item_id):
            await catalog.apply_transcode_progress(pool, event)

    async def on_video_downloaded(event: VideoDownloaded, job: Job[VideoDownloaded]) -> None:
        await catalog.apply_downloaded(pool, event)

    async def on_video_transcoded(event: VideoTranscoded, job: Job[VideoTranscoded]) -> None:
        if await catalog.apply_transcoded(pool, event) and event.profile is None:
            metrics.OUTCOMES.labels(status="ready", code="").inc()

    async def on_item_failed(event: ItemFailed, job: Job[ItemFailed]) -> None:
        if await catalog.apply_failed(pool, event):
            metrics.OUTCOMES.labels(status="failed", code=event.error_code).inc()

    # A database outage is retried with the shared back-off instead of a hot
    # redelivery loop; what still fails ends in the ingest DLQ for replay.
    subscribe_stage(
        broker,
        topology,
        service=SERVICE,
        stage="catalog",
        event_type=VideoDownloaded,
        handler=on_video_downloaded,
    )
    subscribe_stage(
        broker,
        topology,
        service=SERVICE,
        stage="catalog",
        event_type=VideoTranscoded,
        handler=on_video_transcoded,
    )

    async def on_retry_scheduled(event: RetryScheduled, job: Job[RetryScheduled]) -> None:
        await catalog.apply_retry_scheduled(pool, event)

    # A failure (or a retry notice) that cannot be recorded is not announced as a failure.
    subscribe_stage(
        broker,
        topology,
        service=SERVICE,
        stage="catalog",
        event_type=RetryScheduled,
        handler=on_retry_scheduled,
        report_failures=False,
    )
    subscribe_stage(
        broker,
        topology,
        service=SERVICE,
        stage="catalog",
        event_type=ItemFailed,
        handler=on_item_failed,
        report_failures=False,
    )

    # Every stage's dead-lettered messages also arrive here, so an item whose
    # message was poison or crashed its workers too often is marked failed.
    @broker.subscriber(
        topology.dead_lettered_queue(), topology.dead_letter, ack_policy=AckPolicy.NACK_ON_ERROR
    )
    async def on_dead_lettered(message: RabbitMessage) -> None:
        headers = message.headers or {}
        try:
            payload = json.loads(message.body)
            item_id = uuid.UUID(payload["item_id"])
            run = int(payload.get("run", 1))
        except (ValueError, KeyError, TypeError):
            logger.error(
                "dead-lettered message without an item id (queue %s)",
                headers.get("x-first-death-queue"),
            )
            return
        queue = headers.get("x-first-death-queue", "a stage queue")
        reason = headers.get("x-first-death-reason", "rejected")
        failed = ItemFailed(
            item_id=item_id,
            run=run,
            stage="catalog",
            error_code=catalog.DEAD_LETTERED,
            message=f"The message was dead-lettered from {queue} ({reason}); "
            "an operator can replay it from the stage's DLQ.",
            retryable=True,
        )
        try:
            if await catalog.apply_failed(pool, failed):
                metrics.OUTCOMES.labels(status="failed", code=catalog.DEAD_LETTERED).inc()
        except Exception:
            # The catalog is unreachable: hand the notice back, without spinning.
            await asyncio.sleep(1.0)
            raise
