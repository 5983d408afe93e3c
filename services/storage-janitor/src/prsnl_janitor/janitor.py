"""The janitor's work: delete files the catalog let go of, sweep old scratch, measure usage."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

import asyncpg
from prometheus_client import Counter, Gauge

from prsnl_common.events import FileOrphaned, ItemDeleted
from prsnl_common.store import LocalMediaStore

logger = logging.getLogger(__name__)
FILES_REMOVED = Counter("prsnl_janitor_files_removed_total", "Files removed", ["reason"])
CLEANUP_RUNS = Counter("prsnl_janitor_cleanup_runs_total", "Sweeps run", ["kind"])
STORAGE_BYTES = Gauge("prsnl_storage_bytes", "Bytes in the media store by kind", ["kind"])
FREE_BYTES = Gauge("prsnl_storage_free_bytes", "Free bytes on the media store's disk")


async def remove_deleted_item(event: ItemDeleted, store: LocalMediaStore) -> int:
    """S1: the item left the catalog; remove its keys and its whole folder."""
    # File work runs off the event loop: a large folder takes a while to remove.
    removed = await asyncio.to_thread(_remove_all, store, event)
    FILES_REMOVED.labels(reason="item-deleted").inc(removed)
    logger.info("removed %d files of deleted item", removed, extra={"item_id": str(event.item_id)})
    return removed


def _remove_all(store: LocalMediaStore, event: ItemDeleted) -> int:
    removed = sum(1 for key in event.storage_keys if store.delete(key))
    if event.prefix:
        removed += store.delete_prefix(event.prefix)
    return removed


async def remove_orphan(event: FileOrphaned, store: LocalMediaStore, pool: asyncpg.Pool) -> bool:
    """Remove an orphaned file unless the catalog references it again by now.

    A re-transcode back to an earlier profile, or a retry of a failed item,
    writes the same key again, so the reference is checked at deletion time,
    not trusted from the event.
    """
    row = await pool.fetchrow(
        "SELECT run, (video_key = $2 OR original_key = $2 OR EXISTS (SELECT 1 FROM "
        "jsonb_each_text(coalesce(thumbnail_keys, '{}')) AS t WHERE t.value = $2)) AS used "
        "FROM items WHERE id = $1",
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


def sweep_temp(store: LocalMediaStore, ttl_seconds: float, now: float | None = None) -> int:
    """S2: remove scratch folders (``tmp/<job>``) untouched for longer than the TTL."""
    now = now or time.time()
    removed = 0
    for entry in (store.root / "tmp").iterdir():
        newest = max(
            [entry.stat().st_mtime] + [p.stat().st_mtime for p in entry.rglob("*") if p.exists()]
        )
        if now - newest > ttl_seconds:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    CLEANUP_RUNS.labels(kind="temp").inc()
    FILES_REMOVED.labels(reason="temp-expired").inc(removed)
    return removed


def measure(store: LocalMediaStore) -> dict[str, int]:
    """S4: bytes by kind and free disk, as gauges."""
    usage = store.usage()
    for kind in ("original", "video", "thumbnail", "temp"):
        STORAGE_BYTES.labels(kind=kind).set(usage.get(kind, 0))
    FREE_BYTES.set(store.free_bytes())
    return usage
