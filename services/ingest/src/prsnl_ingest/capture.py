"""The one capture path: every front end (HTTP, the Telegram gateway) saves a link through here.

Validation, the address guard, platform classification, default options, the
per-owner de-duplication and the owner's quotas happen in this order, once, so a front end only
translates its own input and the outcome. Capture metrics are counted here
and nowhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

from prsnl_common.errors import PipelineError
from prsnl_common.events import CaptureOptions, ReplyTo, Source
from prsnl_common.netguard import AllowRule, check_url
from prsnl_common.platforms import classify
from prsnl_common.store import LocalMediaStore
from prsnl_ingest import catalog, metrics, quotas
from prsnl_ingest.catalog import CaptureOutcome


async def capture(
    pool: asyncpg.Pool,
    *,
    store: LocalMediaStore,
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
        standing = await quotas.standing(pool, store, owner_id, quota_defaults)
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
        quota=standing.bytes_quota,
    )

    async def admit(connection: quotas.Connection) -> None:
        quotas.refuse_bytes(standing)
        await quotas.admit_capture(connection, owner_id, standing.limits.max_captures_per_day)

    try:
        outcome = await catalog.capture(pool, new, admit)
    except PipelineError as exc:
        metrics.CAPTURES.labels(platform=classified.platform, source=source, outcome=exc.code).inc()
        raise
    metrics.CAPTURES.labels(
        platform=classified.platform,
        source=source,
        outcome="created" if outcome.created else "duplicate",
    ).inc()
    return outcome


def _with_defaults(options: CaptureOptions, default_max_height: int) -> CaptureOptions:
    """The stored options say what will be downloaded, so a missing height gets the default."""
    if options.max_height is not None:
        return options
    return options.model_copy(update={"max_height": default_max_height})
