"""One sweep of the media store: expired scratch and abandoned uploads, newly found orphans,
orphans past their grace.

The scratch sweep and the orphan scan run in one replica at a time (a
PostgreSQL advisory lock that the others skip instead of waiting for); the
removal of orphans past their grace runs in every replica and shares the
rows with ``SKIP LOCKED``, so no file is removed twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from prsnl_common.store import MediaStore
from prsnl_janitor import janitor, orphans, uploads
from prsnl_janitor.orphans import Finding, Publish
from prsnl_janitor.settings import JanitorSettings

MIGRATIONS = Path(__file__).parent / "migrations"
SWEEP_LOCK = 0x70727377_656570  # "prsweep"


async def sweep_once(
    pool: asyncpg.Pool,
    store: MediaStore,
    publish: Publish,
    settings: JanitorSettings,
) -> list[Finding]:
    """Remove expired scratch, announce new orphans, remove orphans whose grace has passed."""
    findings: list[Finding] = []
    async with pool.acquire() as connection:
        if await connection.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK):
            try:
                findings += await asyncio.to_thread(
                    janitor.sweep_temp, store, settings.temp_ttl_seconds
                )
                findings += await asyncio.to_thread(
                    uploads.sweep_uploads, store, settings.temp_ttl_seconds
                )
                found = await orphans.find_new(pool, store, min_age=settings.orphan_min_age_seconds)
                findings += await orphans.announce(
                    pool, found, publish, grace=settings.orphan_grace_seconds
                )
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
    findings += await orphans.remove_due(pool, store)
    janitor.count_removed(findings)
    return findings


async def dry_run(
    pool: asyncpg.Pool, store: MediaStore, settings: JanitorSettings
) -> list[Finding]:
    """What :func:`sweep_once` would do now, changing nothing."""
    findings = await asyncio.to_thread(
        janitor.sweep_temp, store, settings.temp_ttl_seconds, dry_run=True
    )
    findings += await asyncio.to_thread(
        uploads.sweep_uploads, store, settings.temp_ttl_seconds, dry_run=True
    )
    for stored, reason in await orphans.find_new(
        pool, store, min_age=settings.orphan_min_age_seconds
    ):
        detail = f"removable {settings.orphan_grace_seconds:g} s after the announcement"
        findings.append(Finding("would-announce", stored.key, stored.size, reason, detail))
    return findings + await orphans.pending(pool, store)
