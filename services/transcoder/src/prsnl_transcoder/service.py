"""The processing stage: probe the original, make the playable file and thumbnails, publish."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from opentelemetry import trace

from prsnl_common.consumer import Job
from prsnl_common.diskguard import wait_for_disk
from prsnl_common.errors import PermanentError, PipelineError, TransientError
from prsnl_common.events import (
    CaptureOptions,
    Event,
    MediaMetadata,
    TranscodeAction,
    TranscodeRequested,
    VideoDownloaded,
    VideoTranscoded,
    VideoTranscodeProgress,
)
from prsnl_common.metrics import OK, JobMetrics
from prsnl_common.store import MediaStore, thumbnail_key, video_key
from prsnl_common.throttle import Throttle
from prsnl_common.watchdog import Watchdog
from prsnl_transcoder import media
from prsnl_transcoder.planning import (
    PROFILES,
    Limits,
    ProbeResult,
    Profile,
    parse_profile,
    plan_output,
    thumbnail_time,
)
from prsnl_transcoder.settings import TranscoderSettings

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
PROCESSING = JobMetrics("processing", "processing jobs", ["action"])


def limits_for(settings: TranscoderSettings, options: CaptureOptions | None) -> Limits:
    cap = settings.max_height
    if options and options.max_height:
        cap = min(cap, options.max_height)
    return Limits(
        max_height=cap,
        compress_threshold_bytes=settings.compress_threshold_mb * 1024 * 1024,
        crf=settings.crf,
        compress_crf=settings.compress_crf,
        preset=settings.preset,
        audio_bitrate=settings.audio_bitrate,
    )


def metadata_of(probe: ProbeResult) -> MediaMetadata:
    return MediaMetadata(
        container="mp4" if probe.is_mp4_family else probe.container,
        video_codec=probe.video_codec,
        audio_codec=probe.audio_codec,
        width=probe.width,
        height=probe.height,
        fps=round(probe.fps, 3) if probe.fps else None,
        duration=probe.duration,
        bitrate=probe.bitrate,
        size=probe.size,
    )


async def process_video(
    event: VideoDownloaded | TranscodeRequested,
    job: Job[VideoDownloaded] | Job[TranscodeRequested],
    *,
    store: MediaStore,
    settings: TranscoderSettings,
) -> VideoTranscoded:
    """Make ``items/<id>/video.mp4`` (or ``video-<profile>.*``) and thumbnails; publish.

    The outputs are written in a scratch folder and renamed into place, so a
    crash or a redelivery never leaves half a file under a real key; the
    scratch folder is removed whatever happens.
    """
    if isinstance(event, TranscodeRequested):
        if event.profile not in PROFILES:
            raise PermanentError("unknown_profile", f"unknown profile {event.profile!r}")
        profile: Profile | None = parse_profile(event.profile)
        profile_name: str | None = event.profile
        limits = limits_for(settings, None)
    else:
        profile_name = None
        profile = PROFILES["audio"] if event.options.audio_only else None
        limits = limits_for(settings, event.options)
    if not await asyncio.to_thread(store.exists, event.original_key):
        raise _source_missing(event.original_key)
    await wait_for_disk(
        store.free_bytes,
        settings.min_free_bytes,
        settings.disk_wait_limit_seconds,
        jobs="processing jobs",
    )

    started = time.monotonic()
    # One limit for the whole job (probe, produce, probe, thumbnails), below the broker's
    # consumer timeout; each step may take at most what is left of it.
    budget = Watchdog(limit=settings.job_timeout_seconds)
    # Per delivery: two deliveries of one message never share, or wipe, a scratch folder.
    scratch_name = f"transcode-{event.item_id}-{profile_name or 'default'}-{uuid.uuid4().hex[:12]}"
    scratch = await asyncio.to_thread(store.scratch, scratch_name)
    action = "unknown"
    try:
        source = await _local_source(store, event.original_key, scratch)
        with tracer.start_as_current_span(
            "ffmpeg process",
            attributes={
                "prsnl.item_id": str(event.item_id),
                "prsnl.profile": profile_name or "",
            },
        ) as span:
            probe = await media.probe(source, timeout=step(budget, settings.probe_timeout_seconds))
            faststart = probe.is_mp4_family and await media.has_faststart(source)
            plan = plan_output(probe, limits, profile, faststart=faststart)
            plan = replace(plan, preset=settings.preset)
            action = plan.action
            span.set_attribute("prsnl.action", plan.action)
            logger.info(
                "processing: %s (%s)",
                plan.action,
                "; ".join(plan.reasons) or "playable",
                extra={"item_id": str(event.item_id)},
            )
            output = scratch / "video.mp4"
            await media.produce(
                source,
                output,
                plan,
                probe,
                timeout=step(budget),
                stall_seconds=settings.stall_seconds,
                on_progress=_progress_reporter(event, job.publish, profile_name, settings),
            )
            result = await media.probe(output, timeout=step(budget, settings.probe_timeout_seconds))
            thumbnails: dict[int, str] = {}
            thumb_source, thumb_probe = (output, result) if result.has_video else (source, probe)
            if thumb_probe.has_video:
                paths = {w: scratch / f"thumb-{w}.jpg" for w in settings.widths}
                await media.make_thumbnails(
                    thumb_source,
                    paths,
                    at=thumbnail_time(thumb_probe.duration),
                    timeout=step(budget, settings.probe_timeout_seconds),
                    video_index=thumb_probe.video_index,
                )
                for width, path in paths.items():
                    key = thumbnail_key(event.item_id, width, profile_name)
                    thumbnails[width] = (await asyncio.to_thread(store.put_file, key, path)).key
            target = video_key(event.item_id, profile_name)
            stored = await asyncio.to_thread(store.put_file, target, output)
        transcoded = transcoded_event(
            event, stored.key, thumbnails, metadata_of(result), plan.action, profile_name
        )
        await job.publish(transcoded)
        PROCESSING.record(OK, time.monotonic() - started, action)
        return transcoded
    except PipelineError as error:
        PROCESSING.record(error.code, time.monotonic() - started, action)
        raise
    finally:
        await asyncio.to_thread(store.discard_scratch, scratch_name)


async def _local_source(store: MediaStore, key: str, scratch: Path) -> Path:
    """The original as a local file ffmpeg can seek in (a scratch copy from an object store)."""
    try:
        return await asyncio.to_thread(store.local_file, key, scratch)
    except FileNotFoundError as exc:
        raise _source_missing(key) from exc


def _source_missing(key: str) -> PermanentError:
    return PermanentError("source_missing", f"{key} is not in the media store")


def step(budget: Watchdog, cap: float | None = None) -> float:
    """The time the next step may take: what is left of the job's limit, at most ``cap``."""
    left = budget.remaining(cap)
    if left <= 0:
        raise TransientError(
            "processing_timeout", f"the job exceeded its {budget.limit:g} s time limit"
        )
    return left


def transcoded_event(
    event: VideoDownloaded | TranscodeRequested,
    video_key: str,
    thumbnails: dict[int, str],
    metadata: MediaMetadata,
    action: TranscodeAction,
    profile: str | None,
) -> VideoTranscoded:
    """The ``video.transcoded`` of a finished job: always names the original it came from."""
    return VideoTranscoded(
        item_id=event.item_id,
        run=event.run,
        video_key=video_key,
        original_key=event.original_key,
        thumbnail_keys=thumbnails,
        metadata=metadata,
        action=action,
        profile=profile,
    )


def _progress_reporter(
    event: Event,
    publish: Callable[[Event], Awaitable[None]],
    profile: str | None,
    settings: TranscoderSettings,
) -> media.ProgressCallback:
    throttle = Throttle(settings.progress_interval_seconds)

    async def report(fraction: float) -> None:
        if not throttle.due(final=fraction >= 1.0):
            return
        try:
            await publish(
                VideoTranscodeProgress(
                    item_id=event.item_id,
                    run=event.run,
                    fraction=min(1.0, max(0.0, fraction)),
                    profile=profile,
                )
            )
        except Exception as exc:  # progress is best effort; the job goes on
            logger.warning("progress not published: %s", exc)

    return report
