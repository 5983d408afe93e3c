"""The one capture path: every front end (the HTTP API, the Telegram bot) saves a link here.

Validate the link and judge every address it resolves to (the address guard),
classify and normalise it, settle the owner's options, then create the pending
item with its ``url.captured`` in one transaction, or return the owner's twin.
A refused link raises :class:`~prsnl_common.errors.PermanentError` with its
stable code; nothing is stored for it.
"""

from __future__ import annotations

import uuid

import asyncpg

from prsnl_common.errors import PipelineError
from prsnl_common.events import CaptureOptions, ReplyTo, Source
from prsnl_common.netguard import check_url
from prsnl_common.platforms import classify
from prsnl_common.settings import CommonSettings
from prsnl_ingest import catalog, metrics
from prsnl_ingest.catalog import CaptureOutcome
from prsnl_ingest.settings import IngestSettings


async def capture_link(
    pool: asyncpg.Pool,
    settings: IngestSettings,
    common: CommonSettings,
    *,
    owner_id: uuid.UUID,
    url: str,
    source: Source,
    max_height: int | None = None,
    audio_only: bool = False,
    reply_to: ReplyTo | None = None,
) -> CaptureOutcome:
    """Save ``url`` for ``owner_id``: the new pending item, or the one already saved."""
    try:
        await check_url(url, common.allow_rules)
    except PipelineError as refused:
        metrics.CAPTURES.labels(platform="unknown", outcome=refused.code).inc()
        raise
    classified = classify(url)
    options = CaptureOptions(
        max_height=max_height or settings.default_max_height, audio_only=audio_only
    )
    outcome = await catalog.capture(
        pool,
        catalog.NewCapture(
            owner_id=owner_id,
            url=url.strip(),
            normalized_url=classified.normalized_url,
            platform=classified.platform,
            platform_video_id=classified.video_id,
            source=source,
            options=options,
            reply_to=reply_to,
        ),
    )
    outcome_label = "created" if outcome.created else "duplicate"
    metrics.CAPTURES.labels(platform=classified.platform, outcome=outcome_label).inc()
    return outcome
