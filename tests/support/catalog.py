"""Items made straight in the catalog, for tests that need one without the HTTP edge."""

from __future__ import annotations

import uuid

import asyncpg

from prsnl_common.events import CaptureOptions, ItemFailed
from prsnl_common.platforms import classify
from prsnl_ingest import catalog


def new_capture(owner_id: uuid.UUID, url: str) -> catalog.NewCapture:
    """What a capture of ``url`` by ``owner_id`` asks the catalog for."""
    classified = classify(url)
    return catalog.NewCapture(
        owner_id=owner_id,
        url=url,
        normalized_url=classified.normalized_url,
        platform=classified.platform,
        platform_video_id=classified.video_id,
        source="api",
        options=CaptureOptions(),
    )


async def new_item(pool: asyncpg.Pool, owner_id: uuid.UUID, url: str) -> uuid.UUID:
    """A pending item of ``owner_id`` for ``url``, created as a capture creates it."""
    outcome = await catalog.capture(pool, new_capture(owner_id, url))
    return uuid.UUID(str(outcome.item["id"]))


async def fail_item(pool: asyncpg.Pool, item_id: uuid.UUID) -> None:
    """The item's download given up after its attempts (a retryable source error)."""
    failed = ItemFailed(
        item_id=item_id,
        stage="download",
        error_code="source_unavailable",
        message="503",
        attempts=5,
        retryable=True,
    )
    assert await catalog.apply_event(pool, failed)
