"""The download stage: a captured link in; the original stored and ``video.downloaded`` out."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

from opentelemetry import trace

from prsnl_common.consumer import Job
from prsnl_common.diskguard import wait_for_disk
from prsnl_common.errors import PermanentError, PipelineError
from prsnl_common.events import (
    Event,
    SourceInfo,
    UrlCaptured,
    VideoDownloaded,
    VideoDownloadProgress,
)
from prsnl_common.netguard import AllowRule, default_port, is_blocked, parse_http_url
from prsnl_common.settings import CommonSettings
from prsnl_common.store import MediaStore, original_key
from prsnl_downloader.cookies import prepare_cookie_file
from prsnl_downloader.metrics import OUTCOME_OK, record_download
from prsnl_downloader.pool import DownloadPool
from prsnl_downloader.protocol import DownloadProgress, DownloadRequest, format_bytes
from prsnl_downloader.settings import DownloaderSettings

PROGRESS_FLUSH_SECONDS = 5.0

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


async def download_video(
    event: UrlCaptured,
    job: Job[UrlCaptured],
    *,
    pool: DownloadPool,
    store: MediaStore,
    settings: DownloaderSettings,
    common: CommonSettings,
) -> None:
    """Download the captured link, store the original and publish ``video.downloaded``.

    Raises a :class:`~prsnl_common.errors.PipelineError` when the download
    fails; the consumer policy retries transient ones and fails the item on
    permanent ones. Returns only after ``video.downloaded`` is confirmed, since
    the message is acknowledged after that. The scratch directory belongs to
    this delivery and is removed on every way out: no partial file survives a
    failure (a crash's left-overs are swept by the janitor's scratch TTL).
    """
    log = {"item_id": str(event.item_id), "attempt": job.attempt, "platform": event.platform}
    started = time.monotonic()
    outcome = "internal_error"
    stored_size = 0
    try:
        validate_source(event.url, common.allow_rules)
        await wait_for_disk(
            store.free_bytes,
            settings.min_free_bytes,
            settings.disk_wait_limit_seconds,
            jobs="downloads",
        )
        # Per delivery: two deliveries of one message (a replay, a redelivery) never
        # share, or wipe, each other's files.
        scratch = f"download-{event.item_id}-{uuid.uuid4().hex[:12]}"
        workdir = await asyncio.to_thread(store.scratch, scratch)
        progress = ProgressPublisher(job.publish, event)
        try:
            request = DownloadRequest(
                url=event.url,
                workdir=workdir,
                max_bytes=byte_cap(event, settings),
                max_height=event.options.max_height or settings.default_max_height,
                audio_only=event.options.audio_only,
                platform=event.platform,
                cookie_file=prepare_cookie_file(event.platform, settings.cookies_dir, workdir),
                socket_timeout=settings.socket_timeout_seconds,
                progress_interval=settings.progress_interval_seconds,
            )
            attributes = {"prsnl.platform": event.platform, "prsnl.item_id": str(event.item_id)}
            with tracer.start_as_current_span("yt-dlp download", attributes=attributes) as span:
                try:
                    result = await pool.run(request, progress)
                except PipelineError as error:
                    error = over_quota(error, event, settings)
                    span.set_attribute("prsnl.error_code", error.code)
                    raise error from None
                span.set_attribute("prsnl.bytes", result.size)
            for warning in result.warnings:
                logger.info("yt-dlp warning: %s", warning, extra=log)
            key = original_key(event.item_id, result.extension)
            stored = await asyncio.to_thread(store.put_file, key, result.path)
            # Progress first, so no late progress event follows the one that says "done".
            await progress.flush(PROGRESS_FLUSH_SECONDS)
            await job.publish(downloaded_event(event, stored.key, stored.size, result.info))
            outcome, stored_size = OUTCOME_OK, stored.size
        finally:
            progress.cancel()
            await asyncio.to_thread(store.discard_scratch, scratch)
        logger.info(
            "downloaded %s (%s) in %.1f s",
            stored.key,
            format_bytes(stored.size),
            time.monotonic() - started,
            extra=log,
        )
    except PipelineError as error:
        outcome = error.code
        raise
    finally:
        record_download(event.platform, outcome, time.monotonic() - started, stored_size)


def byte_cap(event: UrlCaptured, settings: DownloaderSettings) -> int:
    """The bytes this download may take: the size limit, or what the owner's quota leaves."""
    if event.quota is None:
        return settings.max_bytes
    return min(settings.max_bytes, event.quota.left_bytes)


def over_quota(
    error: PipelineError, event: UrlCaptured, settings: DownloaderSettings
) -> PipelineError:
    """A download stopped by the cap fails ``quota_exceeded`` when the quota set the cap."""
    quota = event.quota
    if error.code != "too_large" or quota is None or quota.left_bytes >= settings.max_bytes:
        return error
    return PermanentError(
        "quota_exceeded",
        f"The download would pass the owner's storage quota: {quota.used_bytes} of "
        f"{quota.max_bytes} bytes were stored, {quota.left_bytes} left; it was stopped "
        f"({error.message})",
    )


def downloaded_event(
    event: UrlCaptured, original_key: str, size: int, info: SourceInfo
) -> VideoDownloaded:
    """The ``video.downloaded`` of a captured link whose original is stored."""
    return VideoDownloaded(
        item_id=event.item_id,
        run=event.run,
        original_key=original_key,
        size=size,
        info=info,
        options=event.options,
    )


def validate_source(url: str, allowlist: Iterable[AllowRule]) -> None:
    """Check the link again before any work: http(s) only, no literal blocked address.

    An event can be replayed from a dead-letter queue long after its capture,
    under a narrower allow-list. Host names are resolved and checked at connect
    time inside the download process, where every redirect is covered too.
    """
    parts = parse_http_url(url)
    host = (parts.hostname or "").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if is_blocked(address, default_port(parts), tuple(allowlist)):
        raise PermanentError(
            "blocked_address", f"The link points at {address}, a private or reserved address."
        )


class ProgressPublisher:
    """Publishes download progress without ever holding up or failing the download.

    At most one publish is in flight; a newer report replaces one still waiting
    (progress is transient and may be dropped). A failed publish is logged.
    """

    def __init__(self, publish: Callable[[Event], Awaitable[None]], event: UrlCaptured) -> None:
        self._publish = publish
        self._event = event
        self._pending: DownloadProgress | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self, progress: DownloadProgress) -> None:
        self._pending = progress
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending is not None:
            progress, self._pending = self._pending, None
            try:
                await self._publish(
                    VideoDownloadProgress(
                        item_id=self._event.item_id,
                        run=self._event.run,
                        downloaded_bytes=progress.downloaded_bytes,
                        total_bytes=progress.total_bytes,
                        speed=progress.speed,
                        eta=progress.eta,
                    )
                )
            except Exception:
                logger.warning(
                    "could not publish download progress",
                    exc_info=True,
                    extra={"item_id": str(self._event.item_id)},
                )

    async def flush(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the progress still being published."""
        if self._task is not None and not self._task.done():
            # asyncio.wait neither raises the task's outcome nor cancels it on timeout.
            await asyncio.wait({self._task}, timeout=grace)

    def cancel(self) -> None:
        """Drop whatever progress is still pending (the job is over)."""
        self._pending = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
