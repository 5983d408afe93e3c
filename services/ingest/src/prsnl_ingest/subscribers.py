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
import uuid
from typing import Any

import asyncpg
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from prsnl_common.broker import Topology
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.events import (
    ItemFailed,
    RetryScheduled,
    StageState,
    VideoDownloaded,
    VideoDownloadProgress,
    VideoTranscoded,
    VideoTranscodeProgress,
)
from prsnl_common.throttle import Throttle
from prsnl_ingest import catalog, metrics, stages
from prsnl_ingest.lifecycle import DEAD_LETTERED

SERVICE = "ingest"
logger = logging.getLogger(__name__)


def subscribe_catalog(
    broker: RabbitBroker, topology: Topology, pool: asyncpg.Pool, progress_interval: float
) -> None:
    throttle = Throttle(progress_interval)  # one progress write per item and interval

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoDownloadProgress),
        topology.events,
        ack_policy=AckPolicy.ACK,
    )
    async def on_video_download_progress(event: VideoDownloadProgress) -> None:
        if throttle.due(event.item_id):
            await catalog.apply_event(pool, event)

    @broker.subscriber(
        topology.stage_queue(SERVICE, VideoTranscodeProgress),
        topology.events,
        ack_policy=AckPolicy.ACK,
    )
    async def on_video_transcode_progress(event: VideoTranscodeProgress) -> None:
        if throttle.due(event.item_id):
            await catalog.apply_event(pool, event)

    async def on_video_downloaded(event: VideoDownloaded, job: Job[VideoDownloaded]) -> None:
        await catalog.apply_event(pool, event)

    async def on_video_transcoded(event: VideoTranscoded, job: Job[VideoTranscoded]) -> None:
        if await catalog.apply_event(pool, event) and event.profile is None:
            metrics.OUTCOMES.labels(status="ready", code="").inc()

    async def on_item_failed(event: ItemFailed, job: Job[ItemFailed]) -> None:
        if await catalog.apply_event(pool, event):
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
        await catalog.apply_event(pool, event)

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

    # A worker's low-disk pause or resume: recorded and sent to every replica.
    @broker.subscriber(topology.stage_state_queue(), topology.events, ack_policy=AckPolicy.ACK)
    async def on_stage_state(state: StageState) -> None:
        await stages.record(pool, state)

    # Every stage's dead-lettered messages also arrive here, so an item whose
    # message was poison or crashed its workers too often is marked failed.
    @broker.subscriber(
        topology.dead_lettered_queue(), topology.dead_letter, ack_policy=AckPolicy.NACK_ON_ERROR
    )
    async def on_dead_lettered(message: RabbitMessage) -> None:
        failed = dead_letter_notice(message.body, message.headers or {})
        if failed is None:
            return
        try:
            if await catalog.apply_event(pool, failed):
                metrics.OUTCOMES.labels(status="failed", code=DEAD_LETTERED).inc()
        except Exception:
            # The catalog is unreachable: hand the notice back, without spinning.
            await asyncio.sleep(1.0)
            raise


def dead_letter_notice(body: bytes, headers: dict[str, Any]) -> ItemFailed | None:
    """The ``item.failed`` that marks a dead-lettered message's item; None without an item.

    A dead-lettered re-transcode request carries its profile, so the item keeps
    the video it serves and only the request is reported failed.
    """
    try:
        payload = json.loads(body)
        item_id = uuid.UUID(payload["item_id"])
        run = int(payload.get("run", 1))
        profile = payload.get("profile")
    except (ValueError, KeyError, TypeError, AttributeError):
        logger.error(
            "dead-lettered message without an item id (queue %s)",
            headers.get("x-first-death-queue"),
        )
        return None
    queue = headers.get("x-first-death-queue", "a stage queue")
    reason = headers.get("x-first-death-reason", "rejected")
    return ItemFailed(
        item_id=item_id,
        run=run,
        stage="catalog",
        error_code=DEAD_LETTERED,
        message=f"The message was dead-lettered from {queue} ({reason}); "
        "an operator can replay it from the stage's DLQ.",
        retryable=True,
        profile=profile if isinstance(profile, str) else None,
    )
