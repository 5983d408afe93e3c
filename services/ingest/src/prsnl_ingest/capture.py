"""The one capture path: every front end (HTTP, the Telegram gateway) saves a link through here.

Validation, the address guard, platform classification, default options, the
per-owner de-duplication and the owner's quotas happen in this order, once, so a front end only
translates its own input and the outcome. Capture metrics are counted here
and nowhere else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from prsnl_common.errors import PermanentError, PipelineError
from prsnl_common.events import CaptureOptions, ReplyTo, Source, new_event_id
from prsnl_common.netguard import AllowRule, check_url
from prsnl_common.platforms import classify
from prsnl_common.store import MediaStore, original_key
from prsnl_ingest import catalog, metrics, quotas
from prsnl_ingest.catalog import CaptureOutcome

VIDEO_EXTENSIONS = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "video/3gpp": "3gp",
    "video/mpeg": "mpg",
}


async def capture(
    pool: asyncpg.Pool,
    *,
    writer: catalog.CaptureWriter,
    store: MediaStore,
    quota_defaults: quotas.Limits,
    allowlist: Iterable[AllowRule],
    default_max_height: int,
    owner_id: uuid.UUID,
    url: str,
    options: CaptureOptions,
    source: Source,
    reply_to: ReplyTo | None = None,
) -> CaptureOutcome:
    """Check ``url`` and create its pending item, or return the owner's existing twin.

    Raises :class:`PipelineError` (``invalid_url``, ``blocked_address``,
    ``quota_exceeded``, ...) for a refused link; nothing is stored then. The
    owner's quotas are checked last, and a duplicate is returned even over quota:
    it stores nothing new.
    """
    try:
        await check_url(url, allowlist)
    except PipelineError as exc:
        metrics.CAPTURES.labels(platform="unknown", source=source, outcome=exc.code).inc()
        raise
    classified = classify(url)
    new = catalog.NewCapture(
        owner_id=owner_id,
        url=url.strip(),
        normalized_url=classified.normalized_url,
        platform=classified.platform,
        platform_video_id=classified.video_id,
        source=source,
        options=_with_defaults(options, default_max_height),
        reply_to=reply_to,
    )
    outcome = None
    if not quota_defaults.any:  # one statement, shared, unless the owner has a quota of its own
        outcome = await writer.capture(new)
    if outcome is None:
        outcome = await _capture_within_quota(pool, store, new, quota_defaults)
    metrics.CAPTURES.labels(
        platform=classified.platform,
        source=source,
        outcome="created" if outcome.created else "duplicate",
    ).inc()
    return outcome


async def _capture_within_quota(
    pool: asyncpg.Pool, store: MediaStore, new: catalog.NewCapture, defaults: quotas.Limits
) -> CaptureOutcome:
    """The capture under its owner's quota: refused over it, counted in the transaction
    against a daily limit; a twin is returned even over quota."""
    try:
        standing = await quotas.standing(pool, store, new.owner_id, defaults)
        new = dataclasses.replace(new, quota=standing.bytes_quota)

        async def admit(connection: quotas.Connection) -> None:
            quotas.refuse_bytes(standing)
            limit = standing.limits.max_captures_per_day
            await quotas.admit_capture(connection, new.owner_id, limit)

        # Without a quota to hold it to, the capture is one statement, no transaction.
        return await catalog.capture(pool, new, admit if standing.checked_on_insert else None)
    except PipelineError as exc:
        metrics.CAPTURES.labels(platform=new.platform, source=new.source, outcome=exc.code).inc()
        raise


def _with_defaults(options: CaptureOptions, default_max_height: int) -> CaptureOptions:
    """The stored options say what will be downloaded, so a missing height gets the default."""
    if options.max_height is not None:
        return options
    return options.model_copy(update={"max_height": default_max_height})


@dataclass(frozen=True)
class Upload:
    """A video file sent by its owner: the body streams in, bounded by ``max_bytes``."""

    body: AsyncIterator[bytes]
    content_type: str
    filename: str | None
    max_bytes: int
    source: Source
    reply_to: ReplyTo | None = None


async def capture_upload(
    pool: asyncpg.Pool,
    store: MediaStore,
    owner_id: uuid.UUID,
    upload: Upload,
    quota_defaults: quotas.Limits,
) -> CaptureOutcome:
    """Store an uploaded original (temporary name, then atomic rename) and create its item.

    Raises :class:`PipelineError` ``too_large`` past the cap, ``quota_exceeded`` past
    what the owner's quotas leave (bytes while it streams in, captures of the day in
    the creating transaction) and ``empty_download`` for an empty body; nothing is
    left behind then.
    """
    standing = await quotas.standing(pool, store, owner_id, quota_defaults)
    quotas.refuse_bytes(standing)
    job = f"upload-{uuid.uuid4().hex}"
    scratch = store.scratch(job)
    try:
        ext = VIDEO_EXTENSIONS.get(upload.content_type, "mp4")
        received = scratch / f"original.{ext}"
        size, digest = await _receive(upload.body, received, _upload_limit(upload, standing))
        new = catalog.NewUpload(
            item_id=new_event_id(),
            owner_id=owner_id,
            digest=digest,
            original_key="",
            size=size,
            title=upload.filename,
            source=upload.source,
            reply_to=upload.reply_to,
        )
        existing = await catalog.find_upload(pool, owner_id, new.url)
        if existing is not None:
            metrics.CAPTURES.labels(
                platform="upload", source=upload.source, outcome="duplicate"
            ).inc()
            return CaptureOutcome(existing, created=False)
        limit = standing.limits.max_captures_per_day

        async def admit(connection: quotas.Connection) -> None:
            await quotas.admit_capture(connection, owner_id, limit)

        outcome = await _store_upload(pool, store, new, received, ext, admit)
    finally:
        store.discard_scratch(job)
    metrics.CAPTURES.labels(
        platform="upload",
        source=upload.source,
        outcome="created" if outcome.created else "duplicate",
    ).inc()
    return outcome


async def _store_upload(
    pool: asyncpg.Pool,
    store: MediaStore,
    new: catalog.NewUpload,
    received: Path,
    ext: str,
    admit: catalog.Admit,
) -> CaptureOutcome:
    key = original_key(new.item_id, ext)
    await asyncio.to_thread(store.put_file, key, received)
    try:
        outcome = await catalog.create_upload(pool, _with_key(new, key), admit)
    except BaseException:
        store.delete(key)  # the item was not created; neither stays its file, even if cancelled
        raise
    if not outcome.created:
        await asyncio.to_thread(store.delete, key)
    return outcome


def _with_key(new: catalog.NewUpload, key: str) -> catalog.NewUpload:
    from dataclasses import replace

    return replace(new, original_key=key)


def _upload_limit(upload: Upload, standing: quotas.Standing) -> tuple[int, PermanentError]:
    """The most bytes the upload may have, and the error past them."""
    too_large = PermanentError("too_large", f"The upload is larger than {upload.max_bytes} bytes.")
    quota = standing.bytes_quota
    if quota is None or quota.left_bytes >= upload.max_bytes:
        return upload.max_bytes, too_large
    return quota.left_bytes, PermanentError(
        "quota_exceeded",
        f"The upload would pass the storage quota: {quota.used_bytes} of {quota.max_bytes} "
        f"bytes stored, {quota.left_bytes} left.",
    )


async def _receive(
    body: AsyncIterator[bytes], target: Path, limit: tuple[int, PermanentError]
) -> tuple[int, str]:
    max_bytes, refusal = limit
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        async for chunk in body:
            size += len(chunk)
            if size > max_bytes:
                raise refusal
            digest.update(chunk)
            await asyncio.to_thread(out.write, chunk)
    if size == 0:
        raise PermanentError("empty_download", "The upload is empty.")
    return size, digest.hexdigest()
