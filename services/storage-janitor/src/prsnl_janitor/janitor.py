"""The janitor's work: delete files the catalog let go of, sweep old scratch, measure usage."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import asyncpg
from prometheus_client import Counter, Gauge

from prsnl_common.events import FileOrphaned, ItemDeleted
from prsnl_common.store import MediaStore
from prsnl_common.usage import StorageReport, storage_report
from prsnl_janitor import orphans
from prsnl_janitor.orphans import Finding

logger = logging.getLogger(__name__)
FILES_REMOVED = Counter("prsnl_janitor_files_removed_total", "Files removed", ["reason"])
CLEANUP_RUNS = Counter("prsnl_janitor_cleanup_runs_total", "Sweeps run", ["kind"])
STORAGE_BYTES = Gauge("prsnl_storage_bytes", "Bytes in the media store by kind", ["kind"])
STORAGE_FILES = Gauge("prsnl_storage_files", "Files in the media store by kind", ["kind"])
OWNER_BYTES = Gauge("prsnl_storage_owner_bytes", "Bytes stored for each owner", ["owner"])
OWNER_FILES = Gauge("prsnl_storage_owner_files", "Files stored for each owner", ["owner"])
FREE_BYTES = Gauge("prsnl_storage_free_bytes", "Free bytes on the media store's disk")
DISK_BYTES = Gauge("prsnl_storage_disk_bytes", "Size of the media store's disk")


async def remove_deleted_item(event: ItemDeleted, store: MediaStore) -> int:
    """S1: the item left the catalog; remove its keys and its whole folder."""
    # File work runs off the event loop: a large folder takes a while to remove.
    removed = await asyncio.to_thread(_remove_all, store, event)
    FILES_REMOVED.labels(reason="item-deleted").inc(removed)
    logger.info("removed %d files of deleted item", removed, extra={"item_id": str(event.item_id)})
    return removed


def _remove_all(store: MediaStore, event: ItemDeleted) -> int:
    removed = sum(1 for key in event.storage_keys if store.delete(key))
    if event.prefix:
        removed += store.delete_prefix(event.prefix)
    return removed


async def remove_orphan(event: FileOrphaned, store: MediaStore, pool: asyncpg.Pool) -> bool:
    """Remove a file the catalog let go of, unless the catalog references it again by now.

    A re-transcode back to an earlier profile, or a retry of a failed item,
    writes the same key again, so the reference is checked at deletion time
    (with the item's row locked ``FOR SHARE``), not trusted from the event. An
    announcement of the janitor's own scan (``delete_after`` set) is only
    recorded: the file goes when its grace has passed (:mod:`prsnl_janitor.orphans`).
    """
    async with pool.acquire() as connection, connection.transaction():
        if event.delete_after is not None:
            stored = await store.head(event.storage_key)
            if stored is not None:
                await orphans.record(connection, [(stored, event)])
            return False
        row = await connection.fetchrow(
            "SELECT run, (video_key = $2 OR original_key = $2 OR EXISTS (SELECT 1 FROM "
            "jsonb_each_text(coalesce(thumbnail_keys, '{}')) AS t WHERE t.value = $2)) AS used "
            "FROM items WHERE id = $1 FOR SHARE",
            event.item_id,
            event.storage_key,
        )
        # A newer run of the item owns its (deterministic) keys now: leave them to it.
        referenced = row is not None and (bool(row["used"]) or row["run"] > event.run)
        if referenced:
            logger.info("orphan %s is referenced again; kept", event.storage_key)
            return False
        removed = await asyncio.to_thread(store.delete, event.storage_key)
    if removed:
        FILES_REMOVED.labels(reason=event.reason).inc()
    return removed


def expired_scratch(
    store: MediaStore, ttl_seconds: float, now: float | None = None
) -> list[tuple[Path, int]]:
    """Scratch folders (``tmp/<job>``) untouched for longer than the TTL, with their sizes."""
    now = now or time.time()
    expired = []
    for entry in (store.root / "tmp").iterdir():
        try:
            files = [p for p in entry.rglob("*") if p.is_file()] if entry.is_dir() else [entry]
            newest = max([entry.stat().st_mtime, *(p.stat().st_mtime for p in files)])
            size = sum(p.stat().st_size for p in files)
        except FileNotFoundError:  # its job removed it meanwhile: the job is alive
            continue
        if now - newest > ttl_seconds:
            expired.append((entry, size))
    return expired


def sweep_temp(
    store: MediaStore, ttl_seconds: float, now: float | None = None, *, dry_run: bool = False
) -> list[Finding]:
    """S2: remove scratch folders untouched for longer than the TTL (or list them)."""
    findings = []
    for entry, size in expired_scratch(store, ttl_seconds, now):
        key = entry.relative_to(store.root).as_posix()
        if not dry_run:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        findings.append(
            Finding("would-remove" if dry_run else "removed", key, size, "temp-expired")
        )
    if not dry_run:
        CLEANUP_RUNS.labels(kind="temp").inc()
        FILES_REMOVED.labels(reason="temp-expired").inc(len(findings))
    return findings


def count_removed(findings: list[Finding]) -> None:
    """Orphans removed by a sweep, counted by reason (scratch is counted where it is swept)."""
    for finding in findings:
        if finding.action == "removed" and finding.reason != "temp-expired":
            FILES_REMOVED.labels(reason=finding.reason).inc()


async def measure(pool: asyncpg.Pool, store: MediaStore) -> StorageReport:
    """S4: the numbers of GET /api/v1/storage as gauges: by kind, by owner, free disk."""
    report = await storage_report(pool, store)
    for kind, counted in report.everything.kinds.items():
        STORAGE_BYTES.labels(kind=kind).set(counted.bytes)
        STORAGE_FILES.labels(kind=kind).set(counted.files)
    OWNER_BYTES.clear()
    OWNER_FILES.clear()
    for owner in report.owners:
        OWNER_BYTES.labels(owner=owner.name).set(owner.usage.total.bytes)
        OWNER_FILES.labels(owner=owner.name).set(owner.usage.total.files)
    FREE_BYTES.set(report.free_bytes)
    DISK_BYTES.set(report.disk_bytes)
    return report
