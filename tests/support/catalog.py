"""Items made straight in the catalog, for tests that need one without the HTTP edge."""

from __future__ import annotations

import uuid

import asyncpg

from prsnl_common.events import CaptureOptions
from prsnl_common.platforms import classify
from prsnl_ingest import catalog


async def new_item(pool: asyncpg.Pool, owner_id: uuid.UUID, url: str) -> uuid.UUID:
    """A pending item of ``owner_id`` for ``url``, created as a capture creates it."""
    classified = classify(url)
    outcome = await catalog.capture(
        pool,
        catalog.NewCapture(
            owner_id=owner_id,
            url=url,
            normalized_url=classified.normalized_url,
            platform=classified.platform,
            platform_video_id=classified.video_id,
            source="api",
            options=CaptureOptions(),
        ),
    )
    return uuid.UUID(str(outcome.item["id"]))
