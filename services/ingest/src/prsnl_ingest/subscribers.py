"""The catalog's subscribers: every pipeline event moves its item forward.

The catalog updates are idempotent (see :mod:`prsnl_ingest.catalog`), so these
handlers simply apply and acknowledge; a database error leaves the message
unacknowledged for redelivery (nack with requeue), bounded by the queue's
delivery limit. Progress is throttled per item before it touches the database.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker

from prsnl_common.broker import Topology
from prsnl_common.events import (
    ItemFailed,
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
    policy = AckPolicy.NACK_ON_ERROR

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

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoDownloaded), topology.events, ack_policy=policy
    )
    async def on_video_downloaded(event: VideoDownloaded) -> None:
        await catalog.apply_downloaded(pool, event)

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoTranscoded), topology.events, ack_policy=policy
    )
    async def on_video_transcoded(event: VideoTranscoded) -> None:
        if await catalog.apply_transcoded(pool, event) and event.profile is None:
            metrics.OUTCOMES.labels(status="ready", code="").inc()

    @broker.subscriber(
        topology.stage_queue(SERVICE, ItemFailed), topology.events, ack_policy=policy
    )
    async def on_item_failed(event: ItemFailed) -> None:
        if await catalog.apply_failed(pool, event):
            metrics.OUTCOMES.labels(status="failed", code=event.error_code).inc()

    # Every stage's dead-lettered messages also arrive here, so an item whose
    # message was poison or crashed its workers too often is marked failed.
    @broker.subscriber(
        topology.dead_lettered_queue(), topology.dead_letter, ack_policy=AckPolicy.ACK
    )
    async def on_dead_lettered(body: bytes, message: Any) -> None:
        headers = message.headers or {}
        try:
            payload = json.loads(body)
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
            error_code="dead_lettered",
            message=f"The message was dead-lettered from {queue} ({reason}); "
            "an operator can replay it from the stage's DLQ.",
            retryable=True,
        )
        if await catalog.apply_failed(pool, failed):
            metrics.OUTCOMES.labels(status="failed", code="dead_lettered").inc()
