"""Wiring of the transcoder: its two subscriptions and their shared resources."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from faststream.rabbit import RabbitBroker

from prsnl_common.broker import Topology
from prsnl_common.consumer import Job, subscribe_stage
from prsnl_common.events import TranscodeRequested, VideoDownloaded
from prsnl_common.settings import CommonSettings
from prsnl_common.store import open_store
from prsnl_transcoder.service import process_video
from prsnl_transcoder.settings import TranscoderSettings

SERVICE = "transcoder"


def make_setup(settings: TranscoderSettings, common: CommonSettings) -> Any:
    @contextlib.asynccontextmanager
    async def setup(broker: RabbitBroker, topology: Topology) -> AsyncIterator[None]:
        store = open_store(common)

        async def on_video_downloaded(event: VideoDownloaded, job: Job[VideoDownloaded]) -> None:
            await process_video(event, job, store=store, settings=settings)

        async def on_transcode_requested(
            event: TranscodeRequested, job: Job[TranscodeRequested]
        ) -> None:
            await process_video(event, job, store=store, settings=settings)

        subscribe_stage(
            broker,
            topology,
            service=SERVICE,
            stage="process",
            event_type=VideoDownloaded,
            handler=on_video_downloaded,
            concurrency=settings.concurrency,
            stop_on_delete=True,
            # A first processing that gives up leaves nothing worth keeping.
            discard_on_failure=lambda event: [event.original_key],
        )
        subscribe_stage(
            broker,
            topology,
            service=SERVICE,
            stage="process",
            event_type=TranscodeRequested,
            handler=on_transcode_requested,
            concurrency=settings.concurrency,
            stop_on_delete=True,
        )
        yield

    return setup
